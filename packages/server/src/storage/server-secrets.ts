import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, ServerSecretsTable } from './schema.ts';

export type ServerSecretRow = Selectable<ServerSecretsTable>;
type Executor = Kysely<Database> | Transaction<Database>;

export async function findServerSecret(db: Executor, name: string): Promise<ServerSecretRow | undefined> {
  return db.selectFrom('server_secrets').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listServerSecrets(db: Executor): Promise<ServerSecretRow[]> {
  return db.selectFrom('server_secrets').selectAll().orderBy('name').execute();
}

/** Throws a unique violation when another instance created the secret first. */
export async function insertServerSecret(db: Executor, row: ServerSecretRow): Promise<void> {
  await db.insertInto('server_secrets').values(row).execute();
}

export async function updateServerSecretValue(db: Executor, name: string, value: string, encryption: string | null): Promise<void> {
  await db.updateTable('server_secrets').set({ value, encryption }).where('name', '=', name).execute();
}
