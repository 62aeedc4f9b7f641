import type { Migration } from 'kysely';
import * as initial from './0001_initial.ts';

/** Every migration, in order. Names never change once released. */
export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
};
