import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';

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

/** JSON is the only body type; bytes must be valid UTF-8, and __proto__/constructor keys are refused. */
export function registerJsonOnly(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(Object.assign(new Error('body is not valid UTF-8'), { statusCode: 400, code: 'GH_INVALID_UTF8' }), undefined);
      return;
    }
    parseJson(request, text, done);
  });
}
