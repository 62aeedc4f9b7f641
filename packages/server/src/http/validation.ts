import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import secureJson from 'secure-json-parse';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (
  ajv: Ajv,
) => Ajv;

const COMMON: Options = { allErrors: true, useDefaults: true, removeAdditional: false, strict: false, addUsedSchema: false };

/** Bodies are never coerced: "password": 123 is a 400, not a login attempt. Query strings may coerce (?limit=10). */
const bodyAjv = addFormats(new Ajv({ ...COMMON, coerceTypes: false }));
const parameterAjv = addFormats(new Ajv({ ...COMMON, coerceTypes: 'array' }));

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodyAjv : parameterAjv).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A client error raised while reading the body; http/errors.ts maps its code to the public message. */
function bodyError(code: string, message: string) {
  return Object.assign(new Error(message), { statusCode: 400, code });
}

/**
 * JSON is the only body type; bytes must be valid UTF-8, and __proto__/constructor.prototype keys
 * are refused. Parsed here rather than by Fastify's default parser, which answers every failure
 * with the same "invalid JSON" and would hide which rule the client broke.
 */
export function registerJsonOnly(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(bodyError('GH_INVALID_UTF8', 'body is not valid UTF-8'), undefined);
      return;
    }
    if (text.length === 0) {
      done(bodyError('GH_EMPTY_BODY', 'body is empty'), undefined);
      return;
    }
    try {
      done(null, secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }));
    } catch (error) {
      const forbidden = /forbidden (prototype|constructor) property/.test((error as Error).message);
      done(forbidden ? bodyError('GH_FORBIDDEN_KEY', 'forbidden key') : bodyError('GH_INVALID_JSON', 'body is not valid JSON'), undefined);
    }
  });
}
