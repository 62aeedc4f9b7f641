/**
 * Holds every exchange a test app serves to the OpenAPI document the same app serves, so the
 * document cannot drift from behaviour. Hooks record what the router matched, the query and
 * parameters as parsed, and the body before validation touched it; onSend, before the answer
 * leaves, checks:
 *   - the answer: its status is documented for the operation, its content type is one the
 *     document lists, and a JSON body matches the schema; an envelope's code is the HTTP status;
 *   - the request, when the server accepted it (below 400): the documented query and path
 *     parameters (others are ignored, as the server ignores them), the body and its content type,
 *     and the credentials the operation's security asks for. Requests refused with a 4xx may be
 *     anything: tests send bad ones on purpose;
 *   - a request no documented operation serves: a 4xx error envelope (an unknown route answers
 *     404), except Swagger UI's pages under /docs and CORS preflights, which need only a status
 *     below 500 and a content type.
 * app.inject rejects with the problems of its exchange; problems of requests over a listening
 * socket are kept for takeProblems(), and app.close() rejects with any left. Validators are
 * compiled once per document.
 */
import type { IncomingMessage } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { ErrorEnvelopeSchema } from '../src/http/envelope.ts';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv2020) => Ajv2020;

type Json = Record<string, any>;

/** Paths served on purpose outside the document: Swagger UI's page and assets, the admin console's files, the pages emailed links open, the passkey test page. */
const UNDOCUMENTED_PREFIXES = ['/docs', '/admin', '/account', '/passkeys/demo'];

interface Seen {
  method: string;
  url: string;
  /** The route pattern the router matched (e.g. /users/:id); undefined when none did (404). */
  route: string | undefined;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  /** The parsed body before validation, once the route got that far. */
  body?: { value: unknown };
}

export interface Exchange extends Seen {
  status: number;
  contentType: string | undefined;
  /** The serialized answer, or undefined for a stream (a static file) or no body. */
  payload: string | undefined;
}

const seen = new WeakMap<object, Seen>();
const problemsOf = new WeakMap<object, string[]>();

export interface OpenApiCheck {
  /** Problems found in exchanges that app.inject did not already report, and forgets them. */
  takeProblems(): string[];
}

export class OpenApiMismatch extends Error {
  override name = 'OpenApiMismatch';
}

/** Hooks the app (before it is ready) and wraps its inject; see the file comment. */
export function attachOpenApiCheck(app: FastifyInstance): OpenApiCheck {
  let checker: DocumentChecker | undefined;
  const unreported = new Map<object, string[]>();

  app.addHook('onRequest', (request, _reply, done) => {
    seen.set(request.raw, {
      method: request.method,
      url: request.url,
      route: request.is404 ? undefined : request.routeOptions.url,
      params: { ...(request.params as Record<string, unknown>) },
      query: { ...(request.query as Record<string, unknown>) },
      headers: request.headers,
    });
    done();
  });
  app.addHook('preValidation', (request, _reply, done) => {
    const record = seen.get(request.raw);
    if (record) record.body = { value: copyOf(request.body) };
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    const record: Seen = seen.get(request.raw) ?? { method: request.method, url: request.url, route: undefined, params: {}, query: {}, headers: request.headers };
    let problems: string[];
    try {
      checker ??= documentChecker(app.swagger() as Json);
      problems = checker.check({
        ...record,
        status: reply.statusCode,
        contentType: headerText(reply.getHeader('content-type')),
        payload: typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined,
      });
    } catch (error) {
      // Never let the check break the answer itself: report its failure as a problem.
      problems = [`the OpenAPI check itself failed: ${(error as Error).stack ?? String(error)}`];
    }
    if (problems.length > 0) {
      const described = problems.map((problem) => `${request.method} ${request.url} → ${reply.statusCode}: ${problem}`);
      problemsOf.set(request.raw, described);
      unreported.set(request.raw, described);
    }
    done(null, payload);
  });

  const takeProblems = () => {
    const all = [...unreported.values()].flat();
    unreported.clear();
    return all;
  };
  app.addHook('onClose', async () => {
    const problems = takeProblems();
    if (problems.length > 0) throw new OpenApiMismatch(`exchanges do not match the OpenAPI document:\n  ${problems.join('\n  ')}`);
  });

  const inject = app.inject.bind(app) as (options: InjectOptions | string) => Promise<LightMyRequestResponse>;
  app.inject = ((options?: InjectOptions | string) => {
    if (options === undefined) throw new Error('tests call app.inject with options, so the OpenAPI check sees the exchange');
    return inject(options).then((response) => {
      const request = response.raw.req;
      const problems = problemsOf.get(request);
      if (problems) {
        unreported.delete(request);
        const body = response.body.length > 300 ? `${response.body.slice(0, 300)}…` : response.body;
        throw new OpenApiMismatch(`the exchange does not match the OpenAPI document:\n  ${problems.join('\n  ')}\n  body: ${body}`);
      }
      return response;
    });
  }) as FastifyInstance['inject'];

  return { takeProblems };
}

/** The body as parsed, safe from the validator's defaults; a body nested too deep to copy is kept as is. */
function copyOf(body: unknown): unknown {
  try {
    return structuredClone(body);
  } catch {
    return body;
  }
}

function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.join(', ');
  return undefined;
}

function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
}

// ---- the document, compiled once -------------------------------------------------------------

interface DocumentChecker {
  check(exchange: Exchange): string[];
}

const checkers = new Map<string, DocumentChecker>();

function documentChecker(document: Json): DocumentChecker {
  const key = JSON.stringify(document);
  let checker = checkers.get(key);
  if (!checker) {
    checker = compileDocument(document);
    checkers.set(key, checker);
  }
  return checker;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** Where the document's component schemas live for ajv: refs to #/components/schemas/X point here instead. */
const COMPONENTS = 'https://gatehouse.invalid/components/schemas/';

function withComponentRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withComponentRefs);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key,
      key === '$ref' && typeof inner === 'string' && inner.startsWith('#/components/schemas/') ? COMPONENTS + inner.slice('#/components/schemas/'.length) : withComponentRefs(inner),
    ]),
  );
}

function compileDocument(original: Json): DocumentChecker {
  const document = withComponentRefs(original) as Json;
  // Answers and bodies are checked as sent: no coercion, no defaults. Parameters arrive as text and
  // are read the way the server reads them (a number in the query is a number).
  const strict = addFormats(new Ajv2020({ strict: false, allErrors: true, validateFormats: true }));
  const parameters = addFormats(new Ajv2020({ strict: false, allErrors: true, coerceTypes: 'array' }));
  for (const [name, schema] of Object.entries<object>(document.components?.schemas ?? {})) {
    for (const ajv of [strict, parameters]) ajv.addSchema(schema, COMPONENTS + name);
  }
  const cache = new Map<object, ValidateFunction>();
  const compile = (ajv: Ajv2020, schema: object): ValidateFunction => {
    let validate = cache.get(schema);
    if (!validate) {
      validate = ajv.compile(schema);
      cache.set(schema, validate);
    }
    return validate;
  };
  const errorEnvelope = strict.compile(ErrorEnvelopeSchema);
  const schemes = (document.components?.securitySchemes ?? {}) as Record<string, Json>;

  // Parameter schemas per operation and location, as one object schema each.
  const parameterSchemas = new Map<Json, { query: object; path: object }>();
  for (const pathItem of Object.values<Json>(document.paths ?? {})) {
    for (const method of METHODS) {
      const operation = pathItem[method] as Json | undefined;
      if (!operation) continue;
      const all = [...(pathItem.parameters ?? []), ...(operation.parameters ?? [])] as Json[];
      const objectOf = (location: string) => {
        const list = all.filter((parameter) => parameter.in === location);
        return {
          type: 'object',
          properties: Object.fromEntries(list.map((parameter) => [parameter.name, parameter.schema ?? {}])),
          required: list.filter((parameter) => parameter.required).map((parameter) => parameter.name),
        };
      };
      parameterSchemas.set(operation, {
        query: objectOf('query'),
        path: objectOf('path'),
      });
    }
  }

  function problemsOfSchema(validate: ValidateFunction, value: unknown, what: string): string[] {
    if (validate(value)) return [];
    return (validate.errors ?? []).map((error) => `${what}${error.instancePath || ''} ${error.message ?? 'is invalid'}${paramsText(error.params)}`);
  }

  function checkUndocumented(exchange: Exchange): string[] {
    const pathname = exchange.url.split('?')[0] ?? '';
    const preflight = exchange.method === 'OPTIONS' && exchange.headers['access-control-request-method'] !== undefined;
    const outside = UNDOCUMENTED_PREFIXES.some((prefix) => pathname === prefix || pathname.startsWith(`${prefix}/`));
    if (exchange.route !== undefined && !outside && !preflight) return [`route ${exchange.method} ${exchange.route} is served but not in the document`];
    if (outside || preflight) {
      const problems: string[] = [];
      if (exchange.status >= 500) problems.push(`status ${exchange.status}`);
      if (exchange.payload && !exchange.contentType) problems.push('a body without a content type');
      return problems;
    }
    // No route matched: the not-found answer, or a refusal before routing.
    if (exchange.status < 400 || exchange.status >= 500) return [`no operation serves this request, yet it answered ${exchange.status}`];
    return checkErrorEnvelope(exchange, errorEnvelope);
  }

  function checkErrorEnvelope(exchange: Exchange, validate: ValidateFunction): string[] {
    if (mediaType(exchange.contentType) !== 'application/json') return [`content type ${exchange.contentType ?? '(none)'} instead of the JSON error envelope`];
    const body = parseJson(exchange.payload);
    if (!body.ok) return ['the body is not JSON'];
    return [...problemsOfSchema(validate, body.value, 'body'), ...envelopeProblems(exchange.status, body.value)];
  }

  function checkResponse(exchange: Exchange, operation: Json, label: string): string[] {
    const responses = (operation.responses ?? {}) as Record<string, Json>;
    const status = String(exchange.status);
    const response = responses[status] ?? responses[`${status[0]}XX`] ?? responses.default;
    if (!response) return [`status ${status} is not documented for ${label} (documented: ${Object.keys(responses).join(', ')})`];
    const content = response.content as Record<string, Json> | undefined;
    const hasBody = exchange.method !== 'HEAD' && exchange.payload !== undefined && exchange.payload.length > 0;
    if (!content) return hasBody ? [`status ${status} of ${label} is documented without a body, but one was sent`] : [];
    if (exchange.method === 'HEAD' || exchange.payload === undefined) return [];
    const type = mediaType(exchange.contentType);
    const media = type ? (content[type] ?? content[`${type.split('/')[0]}/*`] ?? content['*/*']) : undefined;
    if (!media) return [`content type ${exchange.contentType ?? '(none)'} is not documented for ${status} of ${label} (documented: ${Object.keys(content).join(', ')})`];
    if (!isJson(type) || !media.schema) return [];
    const body = parseJson(exchange.payload);
    if (!body.ok) return [`the ${type} body is not JSON`];
    return [...problemsOfSchema(compile(strict, media.schema), body.value, 'response body'), ...envelopeProblems(exchange.status, body.value)];
  }

  function checkRequest(exchange: Exchange, operation: Json, label: string): string[] {
    const problems: string[] = [];
    const schemas = parameterSchemas.get(operation)!;
    const query = { ...exchange.query };
    problems.push(...problemsOfSchema(compile(parameters, schemas.query), query, 'query'));
    problems.push(...problemsOfSchema(compile(parameters, schemas.path), { ...exchange.params }, 'path'));

    const requestBody = operation.requestBody as Json | undefined;
    const sent = exchange.body?.value;
    if (sent === undefined) {
      if (requestBody?.required) problems.push(`${label} requires a body; none was sent`);
    } else if (!requestBody) {
      problems.push(`a body was accepted, but ${label} documents none`);
    } else {
      const type = mediaType(headerText(exchange.headers['content-type']));
      const media = type ? (requestBody.content?.[type] as Json | undefined) : undefined;
      if (!media) problems.push(`request content type ${type ?? '(none)'} is not documented for ${label}`);
      else if (media.schema) problems.push(...problemsOfSchema(compile(strict, media.schema), sent, 'request body'));
    }

    const security = (operation.security ?? document.security ?? []) as Array<Record<string, string[]>>;
    if (security.length > 0 && !security.some((requirement) => Object.keys(requirement).every((name) => carries(exchange, schemes[name])))) {
      problems.push(`${label} was served without the credentials its security asks for (${security.map((r) => Object.keys(r).join('+') || 'none').join(' or ')})`);
    }
    return problems;
  }

  return {
    check(exchange) {
      if (exchange.route === undefined || !exchange.route.startsWith('/')) return checkUndocumented(exchange);
      const path = exchange.route.replace(/:(\w+)(\([^)]*\))?/g, '{$1}');
      const pathItem = document.paths?.[path] as Json | undefined;
      const method = exchange.method.toLowerCase();
      const operation = (pathItem?.[method] ?? (method === 'head' ? pathItem?.get : undefined)) as Json | undefined;
      if (!operation) return checkUndocumented(exchange);
      const label = `${exchange.method} ${path}`;
      const problems = checkResponse(exchange, operation, label);
      if (exchange.status < 400) problems.push(...checkRequest(exchange, operation, label));
      return problems;
    },
  };
}

/** Whether the request carries what a security scheme asks for (presence only: the server judged the value). */
function carries(exchange: Exchange, scheme: Json | undefined): boolean {
  if (!scheme) return false;
  const authorization = headerText(exchange.headers.authorization) ?? '';
  if (scheme.type === 'http') return authorization.toLowerCase().startsWith(`${String(scheme.scheme).toLowerCase()} `);
  if (scheme.type === 'apiKey' && scheme.in === 'header') return exchange.headers[String(scheme.name).toLowerCase()] !== undefined;
  return false;
}

/** The contract every envelope keeps, whatever the schema says: code is the HTTP status, status is code < 400. */
function envelopeProblems(status: number, body: unknown): string[] {
  if (!body || typeof body !== 'object' || !['status', 'code', 'message', 'data'].every((key) => key in body)) return [];
  const envelope = body as { status: unknown; code: unknown };
  const problems: string[] = [];
  if (envelope.code !== status) problems.push(`envelope code ${String(envelope.code)} is not the HTTP status`);
  if (envelope.status !== status < 400) problems.push(`envelope status ${String(envelope.status)} does not match the HTTP status`);
  return problems;
}

function isJson(type: string | undefined): boolean {
  return type === 'application/json' || (type?.endsWith('+json') ?? false);
}

function parseJson(text: string | undefined): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text ?? '') };
  } catch {
    return { ok: false };
  }
}

function paramsText(params: Record<string, unknown>): string {
  const useful = Object.entries(params).filter(([, value]) => typeof value !== 'object');
  return useful.length > 0 ? ` (${useful.map(([name, value]) => `${name}: ${String(value)}`).join(', ')})` : '';
}
