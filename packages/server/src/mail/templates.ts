import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.ts';

/** The messages Gatehouse sends. Each has a subject, a text part and an HTML part. */
export type TemplateName = 'verify_email' | 'reset_password' | 'change_email' | 'email_changed' | 'security_notice';

/** Values a template may use as {{name}}; every one is escaped for the part it lands in. */
export interface TemplateValues {
  name: string;
  email: string;
  /** The page to open (verify, reset, confirm); empty in email_changed, which carries no secret. */
  link: string;
  /** How long the link works, in words ("15 minutes"). */
  expires: string;
  /** email_changed: the address the account moved to. */
  new_email: string;
  product: string;
  /**
   * "Hello Ada," or "Hello," (no name): filled by the mailer from name. Flows leave name empty when the
   * address is not verified, since the name was then typed by whoever signed up, perhaps not the reader.
   */
  greeting?: string;
  /** security_notice: what happened, as a clause of our own wording ("a passkey was added"), never user input. */
  event?: string;
  /** security_notice: when, as an ISO 8601 UTC time. */
  time?: string;
}

const COMMON_VALUES: Array<keyof TemplateValues> = ['greeting', 'name', 'email', 'product'];
/** The values each message fills: a placeholder another message's values would fill renders empty here, so it is refused at start too. */
const VALUE_NAMES: Readonly<Record<TemplateName, ReadonlySet<string>>> = {
  verify_email: new Set([...COMMON_VALUES, 'link', 'expires']),
  reset_password: new Set([...COMMON_VALUES, 'link', 'expires']),
  change_email: new Set([...COMMON_VALUES, 'link', 'expires', 'new_email']),
  email_changed: new Set([...COMMON_VALUES, 'new_email']),
  security_notice: new Set([...COMMON_VALUES, 'event', 'time']),
};

interface Template {
  subject: string;
  text: string;
  html: string;
}

const LAYOUT = (body: string) =>
  `<!doctype html><html><body style="font-family:sans-serif;line-height:1.5;max-width:36em">${body}<p style="color:#666">{{product}}</p></body></html>\n`;
const BUTTON = (label: string) => `<p><a href="{{link}}" style="background:#1f4fd6;color:#fff;padding:.5em 1em;text-decoration:none;border-radius:4px">${label}</a></p><p style="font-size:small">Or paste this address into your browser: {{link}}</p>`;

const BUILT_IN: Record<TemplateName, Template> = {
  verify_email: {
    subject: 'Confirm your email address',
    text: '{{greeting}}\n\nplease confirm that {{email}} is your email address by opening this link within {{expires}}:\n\n{{link}}\n\nIf you did not create an account, ignore this message.\n\n{{product}}\n',
    html: LAYOUT(`<p>{{greeting}}</p><p>please confirm that {{email}} is your email address (the link works for {{expires}}).</p>${BUTTON('Confirm my address')}<p>If you did not create an account, ignore this message.</p>`),
  },
  reset_password: {
    subject: 'Reset your password',
    text: '{{greeting}}\n\nsomeone (we hope you) asked to reset the password of the account {{email}}. Choose a new one within {{expires}} here:\n\n{{link}}\n\nIf it was not you, ignore this message: your password stays as it is.\n\n{{product}}\n',
    html: LAYOUT(`<p>{{greeting}}</p><p>someone (we hope you) asked to reset the password of the account {{email}}. The link works for {{expires}}.</p>${BUTTON('Choose a new password')}<p>If it was not you, ignore this message: your password stays as it is.</p>`),
  },
  change_email: {
    subject: 'Confirm your new email address',
    text: '{{greeting}}\n\nconfirm that the account should use {{new_email}} from now on by opening this link within {{expires}}:\n\n{{link}}\n\nIf you did not ask for this, ignore this message.\n\n{{product}}\n',
    html: LAYOUT(`<p>{{greeting}}</p><p>confirm that the account should use {{new_email}} from now on (the link works for {{expires}}).</p>${BUTTON('Use this address')}<p>If you did not ask for this, ignore this message.</p>`),
  },
  email_changed: {
    subject: 'Your email address was changed',
    text: '{{greeting}}\n\nthe account that used {{email}} now uses {{new_email}}, and every session was signed out.\n\nIf you did not do this, reset your password and contact us at once.\n\n{{product}}\n',
    html: LAYOUT('<p>{{greeting}}</p><p>the account that used {{email}} now uses {{new_email}}, and every session was signed out.</p><p>If you did not do this, reset your password and contact us at once.</p>'),
  },
  // Sent when a sign-in factor changes or the second step is being guessed; carries no link and no secret.
  security_notice: {
    subject: 'Security notice: {{event}}',
    text: '{{greeting}}\n\non the account {{email}}, {{event}} ({{time}}).\n\nIf this was you, there is nothing to do. If it was not, someone may know your password or hold one of your signed-in devices: reset your password now, then review your passkeys and two-factor settings.\n\n{{product}}\n',
    html: LAYOUT('<p>{{greeting}}</p><p>on the account {{email}}, {{event}} ({{time}}).</p><p>If this was you, there is nothing to do. If it was not, someone may know your password or hold one of your signed-in devices: reset your password now, then review your passkeys and two-factor settings.</p>'),
  },
};

export const TEMPLATE_NAMES = Object.keys(BUILT_IN) as TemplateName[];

export interface RenderedMessage {
  subject: string;
  text: string;
  html: string;
}

export interface Templates {
  render(name: TemplateName, values: TemplateValues): RenderedMessage;
}

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

/**
 * The built-in templates, each part replaced by MAIL_TEMPLATES_DIR/<name>.subject.txt, <name>.txt or
 * <name>.html when present. Read once at start, and checked then: a placeholder no message fills is a
 * start-up error, not a message with a hole in it.
 */
export function loadTemplates(templatesDir: string | undefined): Templates {
  const templates: Record<TemplateName, Template> = { ...BUILT_IN };
  const problems: string[] = [];
  if (templatesDir !== undefined) {
    if (!existsSync(templatesDir)) throw new ConfigError([`MAIL_TEMPLATES_DIR: ${templatesDir} does not exist`]);
    for (const name of TEMPLATE_NAMES) {
      const read = (suffix: string) => {
        const path = join(templatesDir, `${name}${suffix}`);
        return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
      };
      const subject = read('.subject.txt');
      templates[name] = { subject: subject?.trim() ?? BUILT_IN[name].subject, text: read('.txt') ?? BUILT_IN[name].text, html: read('.html') ?? BUILT_IN[name].html };
      for (const [part, text] of Object.entries(templates[name])) {
        for (const match of text.matchAll(PLACEHOLDER)) {
          if (!VALUE_NAMES[name].has(match[1]!)) problems.push(`MAIL_TEMPLATES_DIR: ${name} ${part} uses {{${match[1]}}}, which this message does not fill (it has: ${[...VALUE_NAMES[name]].join(', ')})`);
        }
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    render(name, values) {
      const template = templates[name];
      const fill = (text: string, escape: (value: string) => string) => text.replace(PLACEHOLDER, (_all, key: string) => escape(values[key as keyof TemplateValues] ?? ''));
      return {
        // Nodemailer encodes the header, but a line break has no business in a subject at all.
        subject: singleLine(fill(template.subject, singleLine)),
        text: fill(template.text, plainText),
        html: fill(template.html, escapeHtml),
      };
    },
  };
}

/** A value in the text part: control characters (a forged line, a terminal escape) become U+FFFD. */
function plainText(value: string): string {
  return value.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u2028\u2029]|\r|\n/g, '\uFFFD');
}

export function singleLine(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
}

/** A value in the HTML part: text, never markup, also inside a quoted attribute. */
export function escapeHtml(value: string): string {
  return plainText(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
