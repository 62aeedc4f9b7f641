/** `gatehouse users list|show|disable|enable|delete|set-roles` and `gatehouse sessions revoke`. Placeholder: being built. */
import type { CommandIo } from '../clients/commands.ts';

export async function runUserAdminCommand(_argv: string[], usage: string, io: CommandIo): Promise<number> {
  io.stderr.write(`${usage}\n`);
  return 2;
}

export async function runSessionsCommand(_argv: string[], usage: string, io: CommandIo): Promise<number> {
  io.stderr.write(`${usage}\n`);
  return 2;
}
