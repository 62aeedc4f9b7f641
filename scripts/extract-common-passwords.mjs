// Regenerates packages/server/src/passwords/common-passwords.txt from the pinned
// @zxcvbn-ts/language-common (MIT): its 'passwords-common' list, lowercased, one per line.
// The service reads this plain file at start instead of decompressing every zxcvbn dictionary.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { dictionary } = require('@zxcvbn-ts/language-common');
const { version } = require('@zxcvbn-ts/language-common/package.json');
const passwords = [...new Set(dictionary['passwords-common'].map((password) => password.toLowerCase()))];
const target = new URL('../packages/server/src/passwords/common-passwords.txt', import.meta.url);
writeFileSync(target, `# @zxcvbn-ts/language-common ${version} passwords-common (MIT), ${passwords.length} entries\n${passwords.join('\n')}\n`);
console.log(`wrote ${passwords.length} passwords to ${target.pathname}`);
