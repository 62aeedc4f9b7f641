import { parseArgs } from 'node:util';
import { systemClock } from './clock.ts';
import { ConfigError, loadConfig } from './config.ts';
import { openKeyStore } from './keys/key-store.ts';
import { reencryptAtRest } from './keys/reencrypt.ts';
import { createDb } from './storage/db.ts';
import { listVerificationKeys } from './storage/signing-keys.ts';

const USAGE = `usage: gatehouse <command>
  serve [--workers N|auto]
                   start the service (same as npm start); --workers overrides WORKERS
  migrate          apply pending database migrations
  keys list        list signing keys still published in the JWKS
  keys rotate      create a new signing key; the old one stays published until its tokens expire
  keys reencrypt   re-encrypt every signing key and server secret under KEY_ENCRYPTION_SECRET
                   (from plaintext, or from KEY_ENCRYPTION_SECRET_PREVIOUS when rotating it)`;

/** Operator commands; each reads the same environment as the service. */
async function run(argv: string[]): Promise<number> {
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
  if (!['migrate', 'keys list', 'keys rotate', 'keys reencrypt'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }

  const config = loadConfig();
  const database = await createDb(config.databaseUrl);
  try {
    const result = await database.migrate();
    if (command === 'migrate') {
      const applied = result.results?.filter((migration) => migration.status === 'Success').map((migration) => migration.migrationName) ?? [];
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
      return 0;
    }
    if (command === 'keys reencrypt') {
      // Before opening the key store, which would need every record readable already.
      const report = await reencryptAtRest(database.kysely, config);
      process.stdout.write(
        `re-encrypted under KEY_ENCRYPTION_SECRET: ${report.signingKeys} signing keys, ${report.serverSecrets} server secrets ` +
          `(were plaintext: ${report.from.plaintext}, under KEY_ENCRYPTION_SECRET_PREVIOUS: ${report.from.previous}, ` +
          `already under KEY_ENCRYPTION_SECRET: ${report.from.current})\n`,
      );
      return 0;
    }
    const keys = await openKeyStore({ db: database.kysely, clock: systemClock, config });
    if (command === 'keys rotate') {
      const kid = await keys.rotate();
      process.stdout.write(`new signing key ${kid} (${config.jwt.algorithm}); running instances sign with it within a minute\n`);
      return 0;
    }
    for (const row of await listVerificationKeys(database.kysely, systemClock.nowSeconds())) {
      const state = row.retired_at === null ? 'active' : `retired, published until ${new Date(Number(row.expires_at) * 1000).toISOString()}`;
      process.stdout.write(`${row.kid}  ${row.algorithm}  created ${new Date(Number(row.created_at) * 1000).toISOString()}  ${state}\n`);
    }
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
