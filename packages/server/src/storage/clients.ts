import type { Insertable, Kysely, Selectable, Transaction, Updateable } from 'kysely';
import type { ClientsTable, Database } from './schema.ts';

export type ClientRow = Selectable<ClientsTable>;
type Executor = Kysely<Database> | Transaction<Database>;

export async function findClientRow(db: Executor, id: string): Promise<ClientRow | undefined> {
  return db.selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listClientRows(db: Executor): Promise<ClientRow[]> {
  return db.selectFrom('clients').selectAll().orderBy('id').execute();
}

/** Throws a unique violation when the id is taken. */
export async function insertClientRow(db: Executor, row: Insertable<ClientsTable>): Promise<void> {
  await db.insertInto('clients').values(row).execute();
}

export async function updateClientRow(db: Executor, id: string, changes: Updateable<ClientsTable>): Promise<boolean> {
  const result = await db.updateTable('clients').set(changes).where('id', '=', id).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteClientRow(db: Executor, id: string): Promise<boolean> {
  const result = await db.deleteFrom('clients').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
