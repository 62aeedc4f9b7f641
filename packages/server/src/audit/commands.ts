/** `gatehouse audit tail|export`. Placeholder: being built. */
import type { CommandIo } from '../clients/commands.ts';

export async function runAuditCommand(_argv: string[], usage: string, io: CommandIo): Promise<number> {
  io.stderr.write(`${usage}\n`);
  return 2;
}
