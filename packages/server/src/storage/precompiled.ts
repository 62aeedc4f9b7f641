import { CompiledQuery, type Compilable, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * A query for the hot path, compiled once per database and then run with fresh
 * parameters: building and compiling a Kysely query costs more than SQLite's own
 * work for a primary-key lookup. `build` receives placeholder values; `run` takes
 * the real ones in the same order the builder used them.
 */
export function precompiledQuery<Row>(build: (db: Kysely<Database>) => Compilable<Row>) {
  const compiledByDb = new WeakMap<Kysely<Database>, string>();
  return async function run(db: Kysely<Database>, parameters: readonly unknown[]): Promise<Row[]> {
    let sqlText = compiledByDb.get(db);
    if (sqlText === undefined) {
      sqlText = build(db).compile().sql;
      compiledByDb.set(db, sqlText);
    }
    const result = await db.executeQuery<Row>(CompiledQuery.raw(sqlText, [...parameters]));
    return result.rows;
  };
}
