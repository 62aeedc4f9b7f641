import { readFileSync } from 'node:fs';

// Extracted from @zxcvbn-ts/language-common by scripts/extract-common-passwords.mjs; a plain
// file costs a fraction of the memory of importing the package, which unpacks every dictionary.
const LIST_FILE = new URL('./common-passwords.txt', import.meta.url);

let commonPasswords: ReadonlySet<string> | undefined;

/** The common/breached password list (≈49k entries, lowercase), loaded once per process. */
export function loadCommonPasswords(): ReadonlySet<string> {
  if (commonPasswords === undefined) {
    const lines = readFileSync(LIST_FILE, 'utf8').split('\n');
    commonPasswords = new Set(lines.filter((line, index) => index > 0 && line.length > 0));
  }
  return commonPasswords;
}

export function isCommonPassword(lowercasePassword: string): boolean {
  return loadCommonPasswords().has(lowercasePassword);
}
