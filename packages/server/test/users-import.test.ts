import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { hashSync } from '@node-rs/argon2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runUsersCommand } from '../src/users/commands.ts';
import { createTestDatabase, expectErrorEnvelope, json, loginUser, openTestApp, signupUser, STRONG_PASSWORD, testDialects, type TestApp, type TestDatabase } from './helpers.ts';

const USAGE = 'usage: gatehouse (test)';
const WRONG_PASSWORD = 'correct horse battery stapler';

// werkzeug and bcrypt fixtures of src/passwords/legacy.test.ts, all of STRONG_PASSWORD but the seed's.
const WERKZEUG_SCRYPT = 'scrypt:16384:8:1$yZmoun2zSt51aDdC$9d353aa9030c32be5fbab4cd0835b63698da6699835c264ce0dd88d9541cc4219554326013972abe370582efd5e87808806b092b34f5398d9a03d086c8cc5bda';
const WERKZEUG_PBKDF2 = 'pbkdf2:sha256:10000$HaWHiqkodBUSP4G0$3dc9ad9cb101a13b47dc8b689dab19b68d3865b7fa7e7b167fc95917b2673f8f';
const BCRYPT_2B = '$2b$04$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK';
// The Flask seed's own row: werkzeug generate_password_hash('test123') with its default method.
const SEED_SCRYPT_TEST123 = 'scrypt:32768:8:1$KNTfrQV4SHtEuCTp$eefb9c985a99e315f6e1451b3bec49a607fac995f65dc5e568d8d7164c4a3e75b9bb2492b73d6297f058cbf9f10501cddb01b49e9364ab0fa5864b64f5f4ea4d';
// Argon2 PHC strings as other services store them: other parameters than ours (m=1024,t=1,p=1 in tests), other variants, version 0x10.
const argon2 = (algorithm: 0 | 1 | 2, version: 0 | 1, memoryCost: number) => hashSync(STRONG_PASSWORD, { algorithm, version, memoryCost, timeCost: 2, parallelism: 1 });
// The configured hash (FAST_ARGON2), which every imported one becomes at its first login.
const CURRENT_HASH = /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/;

describe.each(testDialects())('gatehouse users import|export [%s]', (dialect) => {
  let database: TestDatabase;
  let test: TestApp;
  let directory: string;
  beforeEach(async () => {
    database = await createTestDatabase(dialect);
    test = await openTestApp(database);
    directory = mkdtempSync(join(tmpdir(), 'gatehouse-import-'));
  });
  afterEach(async () => {
    await test.close();
    await database.drop();
    rmSync(directory, { recursive: true, force: true });
  });

  async function cli(argv: string[], env: Record<string, string> = {}, stderrStream?: PassThrough & { isTTY?: boolean }) {
    let stdout = '';
    let stderr = '';
    const code = await runUsersCommand(argv, USAGE, {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: stderrStream ?? { write: (text: string) => (stderr += text) },
      env: { DATABASE_URL: database.url, LOG_LEVEL: 'silent', ...env },
      clock: test.clock,
      readPassword: async () => '',
    });
    return { code, stdout, stderr };
  }

  function file(name: string, content: string | Buffer): string {
    const path = join(directory, name);
    writeFileSync(path, content);
    return path;
  }

  const jsonLines = (rows: unknown[]) => rows.map((row) => JSON.stringify(row)).join('\n') + '\n';

  async function storedUser(email: string) {
    return test.deps.db.selectFrom('users').selectAll().where('email_normalized', '=', email.toLowerCase()).executeTakeFirst();
  }

  async function userCount(): Promise<number> {
    const row = await test.deps.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async function importEvents() {
    return test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', 'admin.users_import').execute();
  }

  it('imports every hash format as it is; each user signs in over HTTP with the right password only, and is upgraded to Argon2id', async () => {
    const formats: Array<[string, string, string]> = [
      ['werkzeug-scrypt', WERKZEUG_SCRYPT, STRONG_PASSWORD],
      ['werkzeug-seed', SEED_SCRYPT_TEST123, 'test123'],
      ['werkzeug-pbkdf2', WERKZEUG_PBKDF2, STRONG_PASSWORD],
      ['bcrypt', BCRYPT_2B, STRONG_PASSWORD],
      ['argon2id-other-cost', argon2(2, 1, 2048), STRONG_PASSWORD],
      ['argon2i', argon2(1, 1, 1024), STRONG_PASSWORD],
      ['argon2d-v16', argon2(0, 0, 1024), STRONG_PASSWORD],
    ];
    const path = file('users.jsonl', jsonLines(formats.map(([label, hash]) => ({ email: `${label}@Example.com`, name: `User ${label}`, password_hash: hash }))));
    const imported = await cli(['import', path, '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ format: 'jsonl', dry_run: false, records: 7, imported: 7, skipped_existing: 0, refused: 0 });
    expect(imported.stdout + imported.stderr).not.toContain('$2b$');

    for (const [label, hash, password] of formats) {
      const email = `${label}@example.com`;
      expect((await storedUser(email))?.password_hash, label).toBe(hash);
      expectErrorEnvelope(await loginUser(test.app, email, WRONG_PASSWORD), 403);
      expect((await storedUser(email))?.password_hash, `${label}: a wrong password changes nothing`).toBe(hash);

      const login = await loginUser(test.app, email, password);
      expect(login.statusCode, `${label}: ${login.body}`).toBe(201);
      expect(json(login).data).toMatchObject({ email: `${label}@Example.com`, name: `User ${label}` });
      expect((await storedUser(email))?.password_hash, label).toMatch(CURRENT_HASH);
      expect((await loginUser(test.app, email, password)).statusCode, `${label}: again with the new hash`).toBe(201);
    }
  });

  it('reports every bad CSV row with its line number and reason, and the good rows around them go in', async () => {
    const csv = [
      'email,name,password_hash,roles', // 1
      `good1@example.com,Good One,${BCRYPT_2B},user`, // 2
      `good2@example.com,"Good, ""Two""",${WERKZEUG_PBKDF2},"user,support"`, // 3
      `quote@example.com,"Bad"Quote,${BCRYPT_2B},user`, // 4
      `multi@example.com,"Multi`, // 5
      `Line",${BCRYPT_2B},`, // 6
      `fields@example.com,Too Few`, // 7
      `,No Email,${BCRYPT_2B},user`, // 8
      `not-an-email,Bad Email,${BCRYPT_2B},user`, // 9
      `GOOD1@example.com,Again,${BCRYPT_2B},user`, // 10: duplicate of line 2
      `md5@example.com,Md5,5f4dcc3b5aa765d61d8327deb882cf99,user`, // 11
      `root@example.com,Root,${BCRYPT_2B},user root`, // 12
      `costly@example.com,Costly,$2b$14$BvtKuVpJ4P.yG1leyK0h0OHWz1tWipmmjZcPxeEg0k51CVq.AE4PK,user`, // 13
      '', // 14: blank, skipped
      `good4@example.com,Good Four,${WERKZEUG_SCRYPT},admin`, // 15
      `open@example.com,"Never closed,${BCRYPT_2B},user`, // 16: the quote runs to the end of the file
      `lost@example.com,Lost,${BCRYPT_2B},user`, // 17
    ].join('\r\n');
    const result = await cli(['import', file('users.csv', csv)], { ROLES: 'user,admin,support' });
    expect(result.code, result.stderr).toBe(3);
    const reports = result.stderr.split('\n').filter((line) => line.startsWith('line '));
    expect(reports.map((line) => line.split(': ').slice(0, 2).join(': '))).toEqual([
      'line 4: invalid_csv',
      'line 5: invalid_name', // a name with a line break, read as one record over lines 5-6
      'line 7: invalid_csv',
      'line 8: missing_email',
      'line 9: invalid_email',
      'line 10: duplicate_email',
      'line 11: unknown_hash_format',
      'line 12: invalid_roles',
      'line 13: hash_parameters_out_of_range',
      'line 16: invalid_csv',
    ]);
    expect(result.stderr).toContain('line 10: duplicate_email: GOOD1@example.com is already on line 2 of this file');
    // What is not an email is not echoed: a swapped column may hold a hash or a password.
    expect(result.stderr).toContain('line 9: invalid_email: not an email address\n');
    expect(result.stderr).not.toContain('not-an-email');
    expect(result.stderr).toContain('line 12: invalid_roles: role root not in ROLES (user, admin, support)');
    expect(result.stderr).toContain('line 16: invalid_csv: bad CSV quoting: quote not closed (the record runs from line 16 to 17)');
    expect(result.stdout).toMatch(/^imported 3 users from .*users\.csv \(13 records, 0 already registered and skipped, 10 refused\)/);

    const emails = (await test.deps.db.selectFrom('users').select('email').orderBy('id').execute()).map((row) => row.email);
    expect(emails).toEqual(['good1@example.com', 'good2@example.com', 'good4@example.com']);
    expect(await storedUser('good2@example.com')).toMatchObject({ name: 'Good, "Two"', roles: '["user","support"]', password_hash: WERKZEUG_PBKDF2 });
    expect(await storedUser('good4@example.com')).toMatchObject({ roles: '["admin"]', created_at: test.clock.nowSeconds(), disabled_at: null });
  });

  it('reads a clean CSV exactly: quoted and unquoted fields, escaped quotes, a BOM, columns in any order, extra columns ignored', async () => {
    const argon2id = argon2(2, 1, 2048); // m=…,t=…,p=…: must be quoted
    const rows = Array.from({ length: 40 }, (_, index) => (index % 2 === 0 ? `"Name ""${index}"", Jr",extra${index},"${argon2id}",c${index}@example.com,user` : `Name ${index},extra${index},${BCRYPT_2B},c${index}@example.com,`));
    const result = await cli(['import', file('users.csv', `\uFEFFName,Source,Password_Hash,Email,Roles\n${rows.join('\n')}\n`)]);
    expect(result.code, result.stderr).toBe(0);
    const stored = await test.deps.db.selectFrom('users').select(['email', 'name', 'password_hash', 'roles']).orderBy('id').execute();
    expect(stored).toEqual(
      Array.from({ length: 40 }, (_, index) => ({
        email: `c${index}@example.com`,
        name: index % 2 === 0 ? `Name "${index}", Jr` : `Name ${index}`,
        password_hash: index % 2 === 0 ? argon2id : BCRYPT_2B,
        roles: '["user"]',
      })),
    );
  });

  it('reports broken JSON lines, non-objects, non-UTF-8 and overlong lines by number, and keeps going', async () => {
    const good = (n: number) => JSON.stringify({ email: `j${n}@example.com`, name: `J ${n}`, password_hash: BCRYPT_2B });
    const content = Buffer.concat([
      Buffer.from(`${good(1)}\n{"email": "broken@example.com", "name": \n\n[1,2]\n`), // lines 1-4 (3 blank)
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), // line 5: not UTF-8
      Buffer.from(`${JSON.stringify({ email: 'long@example.com', name: 'x'.repeat(70_000), password_hash: BCRYPT_2B })}\n`), // 6
      Buffer.from(`${JSON.stringify({ email: 'noname@example.com', password_hash: BCRYPT_2B })}\n`), // 7
      Buffer.from(`${JSON.stringify({ email: 'nohash@example.com', name: 'No Hash', password: STRONG_PASSWORD })}\n`), // 8
      Buffer.from(`${JSON.stringify({ email: 'roles@example.com', name: 'Roles', password_hash: BCRYPT_2B, roles: 'user' })}\n`), // 9: a string is a list too
      Buffer.from(`${JSON.stringify({ email: 'badroles@example.com', name: 'Bad Roles', password_hash: BCRYPT_2B, roles: [1] })}\n`), // 10
      Buffer.from(good(11)), // 11, no final newline
    ]);
    const result = await cli(['import', file('users.ndjson', content)]);
    expect(result.code).toBe(3);
    const reports = result.stderr.split('\n').filter((line) => line.startsWith('line '));
    expect(reports.map((line) => line.split(': ').slice(0, 2).join(': '))).toEqual([
      'line 2: invalid_json',
      'line 4: invalid_json',
      'line 5: not_utf8',
      'line 6: line_too_long',
      'line 7: invalid_name',
      'line 8: missing_password_hash',
      'line 10: invalid_roles',
    ]);
    expect(result.stderr).not.toContain(STRONG_PASSWORD);
    expect((await test.deps.db.selectFrom('users').select('email').orderBy('id').execute()).map((row) => row.email)).toEqual(['j1@example.com', 'roles@example.com', 'j11@example.com']);
  });

  it('is idempotent: registered emails (any case) are skipped and counted, their accounts untouched; a rerun imports nothing twice', async () => {
    expect((await signupUser(test.app, { email: 'Ada@Example.com', name: 'Ada' })).statusCode).toBe(201);
    const before = await storedUser('ada@example.com');
    // More rows than one INSERT takes (500), so the skips and a duplicate fall in different batches.
    const rows = Array.from({ length: 1200 }, (_, index) => ({ email: `user${index}@example.com`, name: `User ${index}`, password_hash: BCRYPT_2B }));
    rows[700] = { email: 'ada@example.com', name: 'Not Ada', password_hash: WERKZEUG_PBKDF2 };
    rows[1100] = { email: 'USER3@example.com', name: 'Twice', password_hash: BCRYPT_2B };
    const path = file('users.jsonl', jsonLines(rows));

    const first = await cli(['import', path, '--json']);
    expect(first.code).toBe(3);
    expect(JSON.parse(first.stdout)).toMatchObject({ records: 1200, imported: 1198, skipped_existing: 1, refused: 1, refused_by_code: { duplicate_email: 1 } });
    expect(first.stderr).toContain('{"type":"refused","line":1101,"code":"duplicate_email","message":"USER3@example.com is already on line 4 of this file"}');
    expect(await storedUser('ada@example.com')).toEqual(before);
    expect(await userCount()).toBe(1199);

    const again = await cli(['import', path, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ records: 1200, imported: 0, skipped_existing: 1199, refused: 1 });
    expect(await userCount()).toBe(1199);
  });

  it('--dry-run checks every row and which emails are registered, and writes nothing (not even the audit event)', async () => {
    await signupUser(test.app, { email: 'taken@example.com' });
    const path = file('users.jsonl', jsonLines([
      { email: 'new@example.com', name: 'New', password_hash: BCRYPT_2B },
      { email: 'taken@example.com', name: 'Taken', password_hash: BCRYPT_2B },
      { email: 'bad@example.com', name: 'Bad', password_hash: 'plaintext' },
    ]));
    const dryRun = await cli(['import', path, '--dry-run']);
    expect(dryRun.code).toBe(3);
    expect(dryRun.stderr).toContain('line 3: unknown_hash_format');
    expect(dryRun.stdout).toMatch(/^dry run: would import 1 users from .* \(3 records, 1 already registered and skipped, 1 refused\)/);
    expect(await userCount()).toBe(1);
    expect(await importEvents()).toEqual([]);

    const clean = await cli(['import', file('clean.jsonl', jsonLines([{ email: 'new@example.com', name: 'New', password_hash: BCRYPT_2B }])), '--dry-run']);
    expect(clean.code).toBe(0);
    expect(await userCount()).toBe(1);
  });

  it('records one admin.users_import event: the operator, the counts, never a hash', async () => {
    const path = file('users.jsonl', jsonLines([
      { email: 'a@example.com', name: 'A', password_hash: BCRYPT_2B },
      { email: 'b@example.com', name: 'B', password_hash: 'md5:nope' },
    ]));
    await cli(['import', path]);
    const events = await importEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor_type: 'operator', actor_id: null, occurred_at: test.clock.now().getTime() });
    expect(JSON.parse(events[0]!.details!)).toEqual({ file: path, format: 'jsonl', records: 2, imported: 1, skipped_existing: 0, refused: 1, refused_by_code: { unknown_hash_format: 1 } });
    expect(events[0]!.details).not.toContain('$2b$');
  });

  it('keeps created_at and disabled from the file; an imported disabled account cannot sign in', async () => {
    const path = file('users.jsonl', jsonLines([
      { email: 'old@example.com', name: 'Old', password_hash: BCRYPT_2B, created_at: '2019-03-04T05:06:07Z' },
      { email: 'off@example.com', name: 'Off', password_hash: BCRYPT_2B, disabled: true },
      { email: 'when@example.com', name: 'When', password_hash: BCRYPT_2B, created_at: 'yesterday' },
    ]));
    expect((await cli(['import', path])).code).toBe(3);
    expect((await storedUser('old@example.com'))?.created_at).toBe(Date.parse('2019-03-04T05:06:07Z') / 1000);
    expect((await storedUser('off@example.com'))?.disabled_at).toBe(test.clock.nowSeconds());
    expectErrorEnvelope(await loginUser(test.app, 'off@example.com'), 403);
    expect((await loginUser(test.app, 'old@example.com')).statusCode).toBe(201);
  });

  it('shows progress: plain lines with rate and ETA when not on a terminal, a cli-progress bar on one', async () => {
    const rows = Array.from({ length: 3000 }, (_, index) => ({ email: `p${index}@example.com`, name: `P ${index}`, password_hash: BCRYPT_2B }));
    const path = file('users.jsonl', jsonLines(rows)); // ~330 KB: several 64 KiB chunks
    const plain = await cli(['import', path]);
    expect(plain.code).toBe(0);
    const lines = plain.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(/^import: \d+%, \d+ records \(\d+ in, \d+ already registered, \d+ refused\), \d+ rows\/s, ETA \d+ s$/);
    expect(lines.at(-1)).toMatch(/^import: 100%, 3000 records \(3000 in, 0 already registered, 0 refused\)/);

    const terminal = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
    let drawn = '';
    terminal.on('data', (chunk: Buffer) => (drawn += chunk.toString()));
    const bar = await cli(['import', file('again.jsonl', jsonLines([...rows, { email: 'bad', name: 'Bad', password_hash: BCRYPT_2B }]))], {}, terminal);
    expect(bar.code).toBe(3);
    expect(drawn).toMatch(/import \|[█░]+\| 100% \| 3001 records, 0 in, 1 refused \| \d+ rows\/s \| ETA/);
    expect(drawn).toContain('line 3001: invalid_email');
  });

  it('exports every account as JSON lines, the hash only with --with-hashes; the export imports into another database and its users sign in', async () => {
    await signupUser(test.app, { email: 'one@example.com', name: 'One' });
    await cli(['import', file('users.jsonl', jsonLines([{ email: 'two@example.com', name: 'Two', password_hash: BCRYPT_2B, roles: ['user', 'admin'], disabled: true }]))]);

    const plain = await cli(['export']);
    expect(plain.code).toBe(0);
    const exported = plain.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(exported).toEqual([
      { id: expect.any(Number), email: 'one@example.com', name: 'One', roles: ['user'], disabled: false, disabled_at: null, created_at: '2026-06-01T12:00:00.000Z', updated_at: '2026-06-01T12:00:00.000Z' },
      { id: expect.any(Number), email: 'two@example.com', name: 'Two', roles: ['user', 'admin'], disabled: true, disabled_at: '2026-06-01T12:00:00.000Z', created_at: '2026-06-01T12:00:00.000Z', updated_at: '2026-06-01T12:00:00.000Z' },
    ]);
    expect(plain.stdout).not.toMatch(/password_hash|\$argon2|\$2b\$/);

    const withHashes = await cli(['export', '--with-hashes']);
    const rows = withHashes.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(rows.map((row) => row.password_hash)).toEqual([expect.stringMatching(/^\$argon2id\$/), BCRYPT_2B]);
    // Each export is audited, saying whether the hashes left with it.
    const exports = await test.deps.db.selectFrom('audit_events').selectAll().where('action', '=', 'admin.users_export').orderBy('id').execute();
    expect(exports.map((event) => [event.actor_type, JSON.parse(event.details!)])).toEqual([
      ['operator', { users: 2, with_hashes: false }],
      ['operator', { users: 2, with_hashes: true }],
    ]);

    const other = await createTestDatabase(dialect);
    try {
      const otherApp = await openTestApp(other);
      const moved = await cli(['import', file('export.jsonl', withHashes.stdout)], { DATABASE_URL: other.url });
      expect(moved.code, moved.stderr).toBe(0);
      expect((await loginUser(otherApp.app, 'one@example.com')).statusCode).toBe(201);
      expectErrorEnvelope(await loginUser(otherApp.app, 'two@example.com'), 403); // still disabled
      await otherApp.close();
    } finally {
      await other.drop();
    }
  });

  it('fails with exit 1 for a missing file, an unusable CSV header or an unreachable database, and 2 for a malformed command', async () => {
    const missing = await cli(['import', join(directory, 'nope.jsonl')]);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read .*nope\.jsonl: no such file/) });
    expect(await cli(['import', directory, '--format', 'csv'])).toMatchObject({ code: 1, stderr: expect.stringContaining('not a file') });

    const header = await cli(['import', file('users.csv', `mail,name,hash\na@example.com,A,${BCRYPT_2B}\n`)]);
    expect(header).toMatchObject({ code: 1, stderr: expect.stringContaining('the CSV header has no email, password_hash column') });
    expect(await userCount()).toBe(0);

    const path = file('users.jsonl', jsonLines([{ email: 'a@example.com', name: 'A', password_hash: BCRYPT_2B }]));
    // SQLite: a path under a regular file, which can never be opened.
    const unreachable = dialect === 'postgres' ? 'postgres://postgres@127.0.0.1:1/test' : `sqlite:${join(path, 'gatehouse.db')}`;
    const down = await cli(['import', path], { DATABASE_URL: unreachable });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^gatehouse: database unavailable \(.+\); nothing imported\n$/);

    for (const argv of [['import'], ['import', path, path], ['import', path, '--format', 'xml'], ['import', file('users.txt', '')], ['import', path, '--with-hashes'], ['export', '--dry-run'], ['export', 'x']]) {
      expect((await cli(argv)).code, argv.join(' ')).toBe(2);
    }
    expect((await cli(['import', file('users.txt', ''), '--format', 'jsonl'])).code).toBe(0);
  });
});
