/**
 * Reading an import file: JSON lines or CSV, streamed in chunks (never the whole file in memory),
 * every physical line numbered, each record turned into a user row or a refusal with its reason.
 */
import { parse as parseCsvRecords } from 'csv-parse/sync';
import { checkStoredHash } from '../passwords/stored-hash.ts';
import { normalizeEmail } from './user.ts';

export type ImportFormat = 'jsonl' | 'csv';

export type RefusalCode =
  | 'invalid_json'
  | 'invalid_csv'
  | 'line_too_long'
  | 'not_utf8'
  | 'missing_email'
  | 'invalid_email'
  | 'invalid_name'
  | 'missing_password_hash'
  | 'unknown_hash_format'
  | 'hash_parameters_out_of_range'
  | 'invalid_roles'
  | 'invalid_field'
  | 'duplicate_email';

export interface Refusal {
  line: number;
  code: RefusalCode;
  message: string;
}

/** A row ready to insert; times in epoch seconds. */
export interface ImportRow {
  line: number;
  email: string;
  emailNormalized: string;
  name: string;
  passwordHash: string;
  roles: string[];
  createdAt: number | null;
  disabledAt: number | null;
  disabled: boolean;
}

export type SourceItem = { line: number; fields: Record<string, unknown> } | Refusal;

/** A file problem that refuses the whole import (a CSV without the columns it needs). */
export class ImportFileError extends Error {}

/** Longer lines (and CSV records) are refused without being buffered: a hash row is well under 1 KiB. */
export const MAX_LINE_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
// The same rules as POST /signup: ajv-formats' email format, 254 characters, names of 1–100 printable characters.
const EMAIL_PATTERN = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i;
const MAX_EMAIL_LENGTH = 254;
const MAX_NAME_LENGTH = 100;
const NOT_PRINTABLE = /[\u0000-\u001f\u007f\ud800-\udfff]/;
const MAX_HASH_LENGTH = 1024;
const DEFAULT_ROLES = ['user'];
const CSV_REQUIRED_COLUMNS = ['email', 'name', 'password_hash'];

interface Line {
  number: number;
  text?: string;
  problem?: 'line_too_long' | 'not_utf8';
}

/**
 * Physical lines of a byte stream, a chunk's worth at a time; only the line being read is held, and
 * a line past `maxLineBytes` is dropped as it streams by (reported, not buffered).
 */
export async function* readLines(chunks: AsyncIterable<Buffer>, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<{ lines: Line[]; bytesRead: number }> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;
  let lineNumber = 0;
  let bytesRead = 0;

  const finishLine = (): Line => {
    lineNumber += 1;
    const line = tooLong ? { number: lineNumber, problem: 'line_too_long' as const } : decodeLine(Buffer.concat(pending, pendingBytes), lineNumber);
    pending = [];
    pendingBytes = 0;
    tooLong = false;
    return line;
  };
  const keep = (part: Buffer) => {
    if (tooLong || part.length === 0) return;
    if (pendingBytes + part.length > maxLineBytes) {
      tooLong = true;
      pending = [];
      pendingBytes = 0;
      return;
    }
    pending.push(part);
    pendingBytes += part.length;
  };
  function decodeLine(bytes: Buffer, number: number): Line {
    const end = bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN ? bytes.length - 1 : bytes.length;
    try {
      return { number, text: decoder.decode(bytes.subarray(0, end)) };
    } catch {
      return { number, problem: 'not_utf8' };
    }
  }

  for await (const chunk of chunks) {
    bytesRead += chunk.length;
    const lines: Line[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE, start); newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      keep(chunk.subarray(start, newline));
      lines.push(finishLine());
      start = newline + 1;
    }
    keep(chunk.subarray(start));
    yield { lines, bytesRead };
  }
  if (pendingBytes > 0 || tooLong) yield { lines: [finishLine()], bytesRead };
}

function lineProblem(line: Line): Refusal {
  return line.problem === 'line_too_long'
    ? { line: line.number, code: 'line_too_long', message: `line longer than ${MAX_LINE_BYTES} bytes` }
    : { line: line.number, code: 'not_utf8', message: 'not UTF-8 text' };
}

/** JSON lines: one object per line; blank lines are skipped. */
export async function* readJsonLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<{ items: SourceItem[]; bytesRead: number }> {
  for await (const { lines, bytesRead } of readLines(chunks)) {
    const items: SourceItem[] = [];
    for (const line of lines) {
      if (line.text === undefined) {
        items.push(lineProblem(line));
        continue;
      }
      if (line.text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line.text);
      } catch (error) {
        // The parser's message names the position; the line itself is not echoed (it may hold a hash).
        items.push({ line: line.number, code: 'invalid_json', message: `broken JSON: ${(error as Error).message.split('\n')[0]}` });
        continue;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        items.push({ line: line.number, code: 'invalid_json', message: 'each line must be a JSON object' });
        continue;
      }
      items.push({ line: line.number, fields: value as Record<string, unknown> });
    }
    yield { items, bytesRead };
  }
}

/**
 * CSV with a header row naming the columns (email, name, password_hash; roles, created_at, disabled,
 * disabled_at optional; others ignored). Records are cut from lines here (a quoted field may span lines)
 * and each is parsed alone by csv-parse: its stream parser, once a quote is broken, reads the rest of the
 * file as one bad record, so the good rows after it would be lost.
 */
export async function* readCsv(chunks: AsyncIterable<Buffer>): AsyncGenerator<{ items: SourceItem[]; bytesRead: number }> {
  let header: string[] | undefined;
  let recordLines: string[] = [];
  let recordStart = 0;
  let recordLength = 0;
  let quotesOpen = false;
  // Whole records (quotes balanced) waiting to be parsed together: one csv-parse call per chunk, not per row.
  let complete: CsvRecordText[] = [];

  const toItem = (record: CsvRecordText, fields: string[], items: SourceItem[]) => {
    if (header === undefined) {
      header = readHeader(fields);
      return;
    }
    if (fields.length !== header.length) {
      items.push({ line: record.start, code: 'invalid_csv', message: `expected ${header.length} fields (as the header), found ${fields.length}${span(record)}` });
      return;
    }
    const values: Record<string, unknown> = {};
    header.forEach((column, index) => {
      if (column !== '') values[column] = fields[index];
    });
    items.push({ line: record.start, fields: values });
  };
  // string[] for a record's fields, or why it is not CSV.
  const parseOne = (record: CsvRecordText): string[] | Refusal => {
    try {
      const records = parseCsvRecords(record.text, { relax_column_count: true }) as string[][];
      if (records.length !== 1) throw Object.assign(new Error('not one record'), { code: 'CSV_NOT_ONE_RECORD' });
      return records[0]!;
    } catch (error) {
      const problem = csvProblem((error as { code?: string }).code);
      if (header === undefined) throw new ImportFileError(`the CSV header row is not valid CSV: ${problem}`);
      return { line: record.start, code: 'invalid_csv', message: `${problem}${span(record)}` };
    }
  };
  const parseComplete = (items: SourceItem[]) => {
    const records = complete;
    complete = [];
    // A record without quotes is its text cut at the commas (CSV has no other escaping); the quoted ones go
    // to csv-parse together, one call per chunk (a call costs ~100 µs, most of a row's import time).
    const quoted = records.filter((record) => record.text.includes('"'));
    let parsed: Array<string[] | Refusal> | undefined;
    if (header !== undefined && quoted.length > 1) {
      try {
        parsed = parseCsvRecords(quoted.map((record) => record.text).join('\n'), { relax_column_count: true }) as string[][];
      } catch {
        parsed = undefined; // some record is broken: each is parsed alone below, to tell which
      }
    }
    if (parsed === undefined || parsed.length !== quoted.length) parsed = quoted.map(parseOne);
    let quotedIndex = 0;
    for (const record of records) {
      const fields = record.text.includes('"') ? parsed[quotedIndex++]! : record.text.split(',');
      if ('code' in fields) items.push(fields);
      else toItem(record, fields, items);
    }
  };
  const endRecord = (items: SourceItem[], endLine: number) => {
    const record = { start: recordStart, end: endLine, text: recordLines.join('\n') };
    recordLines = [];
    recordLength = 0;
    if (!quotesOpen) {
      complete.push(record);
      return;
    }
    quotesOpen = false;
    if (header === undefined) throw new ImportFileError('the CSV header row has a quote not closed');
    parseComplete(items); // the reports stay in line order
    items.push({ line: record.start, code: 'invalid_csv', message: `bad CSV quoting: quote not closed${span(record)}` });
  };

  let lastLine = 0;
  let lastBytesRead = 0;
  for await (const { lines, bytesRead } of readLines(chunks)) {
    lastBytesRead = bytesRead;
    const items: SourceItem[] = [];
    for (const line of lines) {
      lastLine = line.number;
      if (line.text === undefined) {
        // A broken line inside an open quoted field breaks that record too.
        if (recordLines.length > 0) endRecord(items, line.number - 1);
        parseComplete(items);
        items.push(lineProblem(line));
        continue;
      }
      if (recordLines.length === 0) {
        if (line.text.trim() === '') continue;
        recordStart = line.number;
      }
      recordLines.push(line.text);
      recordLength += line.text.length + 1;
      // Inside a quoted field quotes come in pairs ("" is one quote), so an odd count opens or closes one.
      if (hasOddQuotes(line.text)) quotesOpen = !quotesOpen;
      if (!quotesOpen || recordLength > MAX_LINE_BYTES) endRecord(items, line.number);
      if (header === undefined) parseComplete(items);
    }
    parseComplete(items);
    yield { items, bytesRead };
  }
  const items: SourceItem[] = [];
  if (recordLines.length > 0) endRecord(items, lastLine);
  parseComplete(items);
  if (header === undefined) throw new ImportFileError('the CSV file has no header row (email,name,password_hash[,roles])');
  if (items.length > 0) yield { items, bytesRead: lastBytesRead };
}

interface CsvRecordText {
  start: number;
  end: number;
  text: string;
}

function span(record: CsvRecordText): string {
  return record.end === record.start ? '' : ` (the record runs from line ${record.start} to ${record.end})`;
}

function hasOddQuotes(text: string): boolean {
  let count = 0;
  for (let index = text.indexOf('"'); index !== -1; index = text.indexOf('"', index + 1)) count += 1;
  return count % 2 === 1;
}

function readHeader(fields: string[]): string[] {
  const columns = fields.map((field) => field.trim().toLowerCase());
  const missing = CSV_REQUIRED_COLUMNS.filter((column) => !columns.includes(column));
  if (missing.length > 0) throw new ImportFileError(`the CSV header has no ${missing.join(', ')} column (found: ${columns.join(', ') || 'nothing'})`);
  const repeated = columns.find((column, index) => column !== '' && columns.indexOf(column) !== index);
  if (repeated) throw new ImportFileError(`the CSV header names the column ${repeated} twice`);
  return columns;
}

function csvProblem(code: string | undefined): string {
  switch (code) {
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'bad CSV quoting: a quoted field goes on after its closing quote (a quote inside a field is written "")';
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'bad CSV quoting: quote not closed';
    case 'CSV_NOT_ONE_RECORD':
      return 'not one CSV record';
    default:
      return `bad CSV (${code ?? 'unreadable'})`;
  }
}

/** One record's fields → a row to insert, or why not. Roles must be among `allowedRoles` (ROLES). */
export function validateRecord(line: number, fields: Record<string, unknown>, allowedRoles: ReadonlySet<string>): ImportRow | Refusal {
  const refuse = (code: RefusalCode, message: string): Refusal => ({ line, code, message });

  const rawEmail = fields.email;
  if (rawEmail === undefined || rawEmail === null || (typeof rawEmail === 'string' && rawEmail.trim() === '')) return refuse('missing_email', 'no email');
  if (typeof rawEmail !== 'string') return refuse('invalid_email', 'email must be a string');
  const email = rawEmail.normalize('NFC').trim();
  // The value is not echoed: a swapped column may hold a hash, or a password typed in the wrong field.
  if (email.length > MAX_EMAIL_LENGTH || NOT_PRINTABLE.test(email) || !EMAIL_PATTERN.test(email)) return refuse('invalid_email', 'not an email address');

  const name = typeof fields.name === 'string' ? fields.name.normalize('NFC').trim() : undefined;
  if (name === undefined || name === '') return refuse('invalid_name', 'name missing or blank');
  if (name.length > MAX_NAME_LENGTH || NOT_PRINTABLE.test(name)) return refuse('invalid_name', `name must be 1–${MAX_NAME_LENGTH} printable characters`);

  const passwordHash = typeof fields.password_hash === 'string' ? fields.password_hash.trim() : '';
  if (passwordHash === '') return refuse('missing_password_hash', 'no password_hash (plain passwords are never imported)');
  if (passwordHash.length > MAX_HASH_LENGTH) return refuse('unknown_hash_format', 'password_hash too long for any known format');
  const hashCheck = checkStoredHash(passwordHash);
  if (!hashCheck.ok) return refuse(hashCheck.code, hashCheck.message);

  const roles = readRoles(fields.roles);
  if (roles === null) return refuse('invalid_roles', 'roles must be a list of role names');
  const unknownRoles = roles.filter((role) => !allowedRoles.has(role));
  if (unknownRoles.length > 0) return refuse('invalid_roles', `role ${unknownRoles.join(', ')} not in ROLES (${[...allowedRoles].join(', ')})`);

  const createdAt = readTime(fields.created_at);
  if (createdAt === undefined) return refuse('invalid_field', 'created_at must be an ISO 8601 date or epoch seconds');
  const disabledAt = readTime(fields.disabled_at);
  if (disabledAt === undefined) return refuse('invalid_field', 'disabled_at must be an ISO 8601 date or epoch seconds');
  const disabled = readBoolean(fields.disabled);
  if (disabled === undefined) return refuse('invalid_field', 'disabled must be true or false');

  return { line, email, emailNormalized: normalizeEmail(email), name, passwordHash, roles, createdAt, disabledAt, disabled: disabled || disabledAt !== null };
}

// A JSON array, or a text list (CSV: "user admin", "user,admin" or "user;admin"); absent: the default role.
function readRoles(value: unknown): string[] | null {
  if (value === undefined || value === null || value === '') return DEFAULT_ROLES;
  const listed = typeof value === 'string' ? value.split(/[\s,;]+/).filter(Boolean) : value;
  if (!Array.isArray(listed) || !listed.every((role): role is string => typeof role === 'string')) return null;
  return [...new Set(listed.map((role) => role.trim()))];
}

// null when absent; undefined when unreadable.
function readTime(value: unknown): number | null | undefined {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'number' || (typeof value === 'string' && /^\d{1,12}$/.test(value))) {
    const seconds = Number(value);
    return Number.isSafeInteger(seconds) && seconds >= 0 ? seconds : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const milliseconds = Date.parse(value);
  return Number.isNaN(milliseconds) || milliseconds < 0 ? undefined : Math.floor(milliseconds / 1000);
}

function readBoolean(value: unknown): boolean | undefined {
  if (value === undefined || value === null || value === '') return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && ['true', '1', 'yes'].includes(value.trim().toLowerCase())) return true;
  if (typeof value === 'string' && ['false', '0', 'no'].includes(value.trim().toLowerCase())) return false;
  return undefined;
}
