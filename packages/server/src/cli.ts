import { parseArgs } from 'node:util';
import type { CommandIo } from './clients/commands.ts';
import { ConfigError, loadConfig } from './config.ts';
import { runKeysCommand } from './keys/commands.ts';
import { createDb } from './storage/db.ts';

const USAGE = `usage: gatehouse <command> [--json] [--help]
  serve [--workers N|auto]
                   start the service (same as npm start); --workers overrides WORKERS
  migrate          apply pending database migrations
  keys list        list signing keys still published in the JWKS
  keys rotate      publish a new signing key now; every instance signs with it 10 minutes later,
                   and the old one stays published until its last token expires
  keys rotate --now  the new key signs at once (a compromised key)
  keys reencrypt   re-encrypt every signing key and server secret under KEY_ENCRYPTION_SECRET
                   (from plaintext, or from KEY_ENCRYPTION_SECRET_PREVIOUS when rotating it)
  users create --email <email> --name <name> [--admin] [--json]
                   create an account (the first admin: --admin); the password is asked on the terminal
                   (twice, not shown) or read from the first line of stdin, never from argv or the environment
  users list [--email <prefix>] [--role <role>] [--disabled|--enabled] [--limit N] [--json]
                   accounts matching every filter given, by id (--json: one JSON object per line)
  users show <id|email> [--json]
                   the account, its roles and its sessions (newest first)
  users disable <id|email> [--json]
                   refuse the account from now on and end its sessions for good
  users enable <id|email> [--json]
  users delete <id|email> [--json]
                   delete the account (its sessions end first); the last admin cannot be deleted
  users set-roles <id|email> <role,role…> [--json]
                   replace the account's roles (from ROLES); removing one ends its sessions
  users import <file> [--format jsonl|csv] [--dry-run] [--json]
                   add accounts from JSON lines or CSV (email, name, password_hash, roles), hashes kept as
                   they are (werkzeug, bcrypt, Argon2) and upgraded at each user's next login; existing
                   emails are skipped; every bad line is reported with its number (--dry-run: write nothing)
  users export [--with-hashes]
                   every account as JSON lines on stdout (password hashes included only with --with-hashes)
  sessions revoke --user <id|email> [--json]
                   end every session of an account (its refresh tokens stop working, its access tokens are refused)
  audit tail [--follow] [--action <a>] [--user <id>] [--limit N] [--json]
                   the latest audit events (--follow: keep printing new ones)
  audit export [--since <date>] [--until <date>] [--action <a>] [--user <id>]
                   audit events as JSON lines on stdout
  clients create --id <id> --name <name> --type public|confidential [--audience <aud>]... [--scope <scope>]... [--json]
                   register an application (public) or a service (confidential: its secret is printed once)
  clients list [--json]
  clients rotate-secret <id> [--grace 1h] [--json]
                   a new secret; the old one keeps working for the grace (none by default: a leaked secret)
  clients disable <id> [--json]
                   refuse the client from now on and end its sessions (the default client cannot be disabled)
  clients enable <id> [--json]
                   accept it again (its ended sessions stay ended)
  clients delete <id> [--json]
                   delete a client and revoke its sessions (the default client gatehouse stays)
  db copy --from <url> --to <url> [--force]
                   copy every row (e.g. sqlite:./data/gatehouse.db → postgres://…), verified by row counts
                   and checksums; refuses a non-empty target unless --force (which replaces its rows)

exit codes: 0 done; 1 refused or failed (the reason on stderr); 2 malformed command (the usage on stderr);
            3 users import: some lines were refused (the good ones went in)`;

/** The process's streams, for commands that take an io (tests pass their own). */
function processIo(): CommandIo {
  return { stdout: process.stdout, stderr: process.stderr };
}

/** Operator commands; each reads the same environment as the service. */
async function run(argv: string[]): Promise<number> {
  // --help anywhere (gatehouse --help, gatehouse keys --help…): the usage, on stdout, exit 0.
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (argv[0] === 'users') {
    const { readPasswordFromProcess, runUsersCommand } = await import('./users/commands.ts');
    return runUsersCommand(argv.slice(1), USAGE, { stdout: process.stdout, stderr: process.stderr, readPassword: readPasswordFromProcess });
  }
  // Its own options (--from, --to…); it names both databases instead of reading DATABASE_URL.
  if (argv[0] === 'db' && argv[1] === 'copy') return (await import('./storage/copy.ts')).runDbCopy(argv.slice(2));
  if (argv[0] === 'keys') return runKeysCommand(argv.slice(1), USAGE);
  if (argv[0] === 'sessions') return (await import('./users/admin-commands.ts')).runSessionsCommand(argv.slice(1), USAGE, processIo());
  if (argv[0] === 'audit') return (await import('./audit/commands.ts')).runAuditCommand(argv.slice(1), USAGE, processIo());
  if (argv[0] === 'clients') return (await import('./clients/commands.ts')).runClientsCommand(argv.slice(1), USAGE);
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { workers: { type: 'string' } } });
  const command = positionals.join(' ');
  if (values.workers !== undefined && command !== 'serve') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (command === 'serve') {
    // The flag is another spelling of WORKERS: config.ts validates it, and the forked workers inherit it.
    if (values.workers !== undefined) process.env.WORKERS = values.workers;
    await import('./main.ts');
    return -1; // keep running
  }
  if (!['migrate'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }

  const config = loadConfig();
  const database = await createDb(config.databaseUrl);
  try {
    const result = await database.migrate();
    const applied = result.results?.filter((migration) => migration.status === 'Success').map((migration) => migration.migrationName) ?? [];
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`gatehouse: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
