/** `gatehouse users import|export`. Placeholder: being built. */
import type { CommandIo } from '../clients/commands.ts';

export async function runImportExportCommand(_argv: string[], usage: string, io: CommandIo): Promise<number> {
  io.stderr.write(`${usage}\n`);
  return 2;
}
