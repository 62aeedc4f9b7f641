/** `gatehouse users create`: an account made by an operator (the first admin), its password never in argv or the environment. */
import { parseArgs } from 'node:util';
import { signup, DEFAULT_ROLES } from '../auth/signup.ts';
import { systemClock } from '../clock.ts';
import type { CommandIo } from '../clients/commands.ts';
import { loadConfig } from '../config.ts';
import { isAppError } from '../errors.ts';
import { createPasswordHasher, createPasswordPolicy, OWASP_ARGON2ID, type Argon2Parameters } from '../passwords/index.ts';
import { createDb } from '../storage/db.ts';
import { ADMIN_ROLE } from './admin.ts';

export interface UsersCommandIo extends CommandIo {
  /** Reads the password: from a hidden prompt on a terminal, else the first line of stdin. */
  readPassword(): Promise<string>;
  /** Tests pass cheap Argon2 costs; OWASP's by default. */
  argon2?: Argon2Parameters;
}

const OPTIONS = {
  email: { type: 'string' },
  name: { type: 'string' },
  admin: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** Returns the exit code: 0 done, 1 refused (the reason on stderr), 2 with the usage for a malformed command. */
export async function runUsersCommand(argv: string[], usage: string, io: UsersCommandIo): Promise<number> {
  const subcommand = argv.find((arg) => !arg.startsWith('-'));
  if (subcommand === 'import' || subcommand === 'export') return (await import('./import-command.ts')).runImportExportCommand(argv, usage, io);
  if (subcommand !== undefined && ['list', 'show', 'disable', 'enable', 'delete', 'set-roles'].includes(subcommand)) {
    return (await import('./admin-commands.ts')).runUserAdminCommand(argv, usage, io);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch {
    parsed = undefined;
  }
  // --password does not exist on purpose: argv is visible to every user of the machine (ps) and kept in shell history.
  if (!parsed || parsed.positionals.join(' ') !== 'create' || !parsed.values.email || !parsed.values.name) {
    io.stderr.write(`${usage}\n`);
    return 2;
  }
  const { email, name, admin, json } = parsed.values;
  const config = loadConfig(io.env);
  const password = await io.readPassword();
  if (!password) {
    io.stderr.write('gatehouse: no password given (type it at the prompt, or pipe it on stdin)\n');
    return 1;
  }
  const database = await createDb(config.databaseUrl);
  const hasher = createPasswordHasher(io.argon2 ?? OWASP_ARGON2ID, { threads: 1, queueMax: 1 });
  try {
    await database.migrate();
    const passwordPolicy = createPasswordPolicy({ minLength: config.password.minLength, maxLength: config.password.maxLength, breachedCheck: config.password.breachedCheck });
    const roles = admin ? [...DEFAULT_ROLES, ADMIN_ROLE] : DEFAULT_ROLES;
    const user = await signup({ db: database.kysely, clock: io.clock ?? systemClock, hasher, passwordPolicy }, { email, name, password }, { roles });
    io.stdout.write(json ? `${JSON.stringify(user)}\n` : `created user ${user.id} <${user.email}> with roles ${user.roles.join(', ')}\n`);
    return 0;
  } catch (error) {
    if (isAppError(error) && (error.code === 'invalid_input' || error.code === 'email_taken')) {
      const reason = error.code === 'email_taken' ? 'email already registered' : (error.details.fieldErrors?.map((problem) => problem.message).join('; ') ?? error.message);
      io.stderr.write(`gatehouse: ${reason}\n`);
      return 1;
    }
    throw error;
  } finally {
    await hasher.close();
    await database.close();
  }
}

/** The password from a terminal (asked twice, not echoed) or from the first line of stdin. */
export async function readPasswordFromProcess(): Promise<string> {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin) text += chunk;
    return text.split(/\r?\n/)[0] ?? '';
  }
  const first = await promptHidden('password: ');
  const second = await promptHidden('password again: ');
  if (first !== second) {
    stderr.write('gatehouse: the two passwords differ\n');
    return '';
  }
  return first;
}

function promptHidden(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let typed = '';
    const onData = (chunk: string) => {
      for (const character of chunk) {
        if (character === '\u0003') {
          finish();
          reject(new Error('interrupted'));
          return;
        }
        if (character === '\r' || character === '\n' || character === '\u0004') {
          finish();
          resolve(typed);
          return;
        }
        if (character === '\u007f' || character === '\b') typed = typed.slice(0, -1);
        else typed += character;
      }
    };
    function finish() {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
    }
    stdin.on('data', onData);
  });
}
