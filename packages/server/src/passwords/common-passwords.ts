import { createRequire } from 'node:module';

type LanguageCommonPackage = typeof import('@zxcvbn-ts/language-common');

// The package decompresses its lists when imported; requiring it on demand spares that cost when the check is off.
const requireOnDemand = createRequire(import.meta.url);

let commonPasswords: ReadonlySet<string> | undefined;

/** zxcvbn-ts's common/breached password list (≈49k entries, already lowercase), loaded once per process. */
export function loadCommonPasswords(): ReadonlySet<string> {
  if (commonPasswords === undefined) {
    const { dictionary } = requireOnDemand('@zxcvbn-ts/language-common') as LanguageCommonPackage;
    commonPasswords = new Set(dictionary['passwords-common'].map((password) => password.toLowerCase()));
  }
  return commonPasswords;
}

export function isCommonPassword(lowercasePassword: string): boolean {
  return loadCommonPasswords().has(lowercasePassword);
}
