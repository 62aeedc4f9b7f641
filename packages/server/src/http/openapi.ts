import { STATUS_CODES } from 'node:http';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifySwaggerUiOptions } from '@fastify/swagger-ui';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Config } from '../config.ts';
import { ERROR_ENVELOPE_ID, ErrorEnvelopeSchema, ErrorResponse } from './envelope.ts';
import { OPTIONAL_BODY, PUBLIC_SECURITY } from './schemas.ts';

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';

const INTRODUCTION = `Gatehouse signs users in and issues short-lived access tokens (JWT, RFC 9068) that your other services
verify on their own with the public keys it publishes.

## The envelope

Every JSON answer but a few uses the same envelope:

\`\`\`json
{ "status": true, "code": 201, "message": "successfully registered", "data": { "id": 1, "email": "ada@example.com" } }
\`\`\`

\`code\` always equals the HTTP status and \`status\` is \`false\` on errors. A 400 lists what was wrong, field by field,
in \`data.errors\` as \`[{ "field", "message" }]\`. Not enveloped: \`GET /\` (text), \`GET /users\` (the seed's list shape),
the \`/.well-known/*\` documents and this document. Answers never hold a password, a hash, a stack trace or SQL.
Wrong content type: 415; body over the limit: 413; too many requests: 429 and overload: 503, both with \`Retry-After\`.

## The token flow

1. \`POST /signup\` creates an account; \`POST /login\` answers an access token (\`token\`, valid for \`expires_in\` seconds,
   15 minutes by default) and a \`refresh_token\`.
2. Send the access token as \`Authorization: Bearer <token>\` (or in the seed's \`x-access-token\` header).
3. Shortly before it expires, or on a 401, \`POST /token/refresh\` with the refresh token: you get a new pair.
   A refresh token is single use; presenting a spent one again, after a short retry grace, revokes the whole session.
   So refresh once, even when many requests failed at the same moment.
4. \`POST /logout\` revokes the session (\`{"all": true}\`: every session of the user).

\`@gatehouse/client\` (packages/client) does all of this for a browser or a Node app, with types generated from
this document.

## Verifying tokens in another service

Verify access tokens locally; do not call Gatehouse per request. With \`@gatehouse/verify\` (packages/verify),
\`createVerifier({ issuer, audience })\` does it all (and can follow revocations). With any JWT library: take the keys from \`jwks_uri\` in
\`/.well-known/oauth-authorization-server\` (that is \`/.well-known/jwks.json\`), cache them and refetch on an unknown
\`kid\`, pin the algorithm, and check \`typ: at+jwt\`, \`iss\` (this server's address, below), \`aud\` and \`exp\`.
A user token carries \`sub\` (the user id), \`sid\`, \`email\` and \`roles\`. After a logout, Gatehouse refuses the
session's access tokens at once; another service learns of it from the revocation feed or introspection, or
when the short-lived token expires.`;

/** A gate under a roof: the mark of the /docs top bar and favicon. */
function gateIcon(color: string): string {
  return (
    `<g fill="none" stroke="${color}" stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round">` +
    '<path d="M5 36V15L20 5l15 10v21"/><path d="M12 36V24a8 8 0 0 1 16 0v12"/></g>'
  );
}

const LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40" viewBox="0 0 200 40">' +
  gateIcon('#f5f5f5') +
  '<text x="46" y="28" fill="#f5f5f5" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" ' +
  'font-size="22" font-weight="600">Gatehouse</text></svg>';
const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">${gateIcon('#1d4ed8')}</svg>`;
const THEME_CSS = '.swagger-ui .topbar { background-color: #14213d; } .swagger-ui .topbar a { max-width: none; }';

const TAGS = [
  { name: 'auth', description: 'Accounts and sessions: sign up, log in, refresh, log out' },
  { name: 'users', description: 'The signed-in user, and the user list' },
  { name: 'admin', description: 'Administration (role admin): users, their sessions, the audit log, signing keys, clients' },
  { name: 'discovery', description: 'What a service that verifies tokens needs: keys and metadata' },
  { name: 'health', description: 'Liveness, readiness, and the seed greeting' },
  { name: 'oauth', description: 'The standard endpoints: token (RFC 6749), revocation (RFC 7009), introspection (RFC 7662), in form bodies and OAuth errors' },
  { name: 'revocations', description: 'The revocation feed, for resource servers that verify tokens locally (confidential clients)' },
  { name: 'audit', description: 'The audit log (admin role): who did what, to whom, from where' },
  { name: 'keys', description: 'Admin: the signing keys, and their rotation' },
  { name: 'clients', description: 'Admin: the registered clients (applications and services), enabled or disabled' },
];

/** @fastify/swagger options: the document's header, and the decorations derived from the route schemas. */
export function swaggerOptions(config: Pick<Config, 'jwt'>): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Gatehouse',
        description: INTRODUCTION,
        version: '0.1.0',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // The issuer is the address clients and verifiers know this service by (also in every token's iss).
      servers: [{ url: config.jwt.issuer.replace(/\/+$/, ''), description: 'This Gatehouse (its JWT issuer)' }],
      tags: TAGS,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A user access token from /login or /token/refresh' },
          accessTokenHeader: { type: 'apiKey', in: 'header', name: 'x-access-token', description: "The same access token in the seed's header" },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, for GET /metrics on the API port' },
          clientBasic: {
            type: 'http',
            scheme: 'basic',
            description: "A confidential client's id and secret (client_secret_basic, RFC 6749 section 2.3.1), from `gatehouse clients create`",
          },
        },
      },
    },
    convertConstToEnum: false,
    // Shared schemas (the error envelope) become components named by their $id, not def-0.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, index) => (typeof json.$id === 'string' ? json.$id : `def-${index}`) },
    transformObject: (documentObject) => decorateDocument((documentObject as { openapiObject: OpenApiDocument }).openapiObject),
  } as FastifyDynamicSwaggerOptions;
}

export const swaggerUiOptions: FastifySwaggerUiOptions = {
  routePrefix: DOCS_PATH,
  staticCSP: true,
  // Swagger UI's own policy, minus upgrade-insecure-requests, which breaks the page on plain-HTTP localhost.
  transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  logo: { type: 'image/svg+xml', content: Buffer.from(LOGO_SVG), href: DOCS_PATH, target: '_self' },
  theme: {
    title: 'Gatehouse API',
    css: [{ filename: 'gatehouse.css', content: THEME_CSS }],
    favicon: [{ filename: 'favicon.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(FAVICON_SVG) }],
  },
};

/** What any answer of a status means, for error answers a route lists without a description of its own. */
const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host)',
  401: 'Authentication failed',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Body larger than BODY_LIMIT',
  414: 'URL too long',
  415: 'Unsupported Content-Type',
  429: 'Too many requests; Retry-After says when to try again',
  503: 'Unavailable; Retry-After says when to try again',
};

/**
 * Shares the error envelope (ErrorResponse refers to it), and adds the answers every documented
 * route can give to its schema, so the document lists them and the serializer shapes them: 400
 * (a malformed URL, an access token in the query, a bad body), and on routes with a body 413 and
 * 415. A bare ErrorEnvelopeSchema becomes the shared one, with the description of its status.
 * Must be registered before the routes: onRoute sees only routes added after it.
 */
export function registerSharedResponses(app: FastifyInstance): void {
  app.addSchema({ ...ErrorEnvelopeSchema, $id: ERROR_ENVELOPE_ID });
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema;
    if (!schema || schema.hide) return;
    const response = (schema.response ??= {}) as Record<string, unknown>;
    const shared = schema.body ? [400, 413, 415] : [400];
    for (const status of shared) response[status] ??= ErrorEnvelopeSchema;
    for (const [status, answer] of Object.entries(response)) {
      if (answer === ErrorEnvelopeSchema) response[status] = ErrorResponse(ERROR_DESCRIPTIONS[Number(status)] ?? STATUS_CODES[Number(status)] ?? 'Error');
    }
  });
}

/** GET /openapi.json: this document, for tools and for the client's generated types. */
export function registerDocumentRoute(app: FastifyInstance): void {
  app.get(
    OPENAPI_PATH,
    {
      schema: {
        operationId: 'getOpenApiDocument',
        tags: ['discovery'],
        summary: 'This OpenAPI document (also rendered at /docs)',
        security: PUBLIC_SECURITY,
        response: { 200: Type.Object({}, { additionalProperties: true, description: 'The OpenAPI 3.1 document' }) },
      },
    },
    async () => app.swagger(),
  );
}

// ---- document decorations -------------------------------------------------------------------

type JsonObject = Record<string, any>;
interface OpenApiDocument {
  paths?: Record<string, Record<string, JsonObject> | undefined>;
  components?: { securitySchemes?: Record<string, unknown>; [key: string]: unknown };
  [key: string]: unknown;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const RETRY_AFTER = { description: 'Seconds to wait before trying again', schema: { type: 'integer', minimum: 0 } };
const WWW_AUTHENTICATE = { description: 'The authentication scheme, and for a refused token why (RFC 6750 section 3)', schema: { type: 'string' } };

/**
 * What the route schemas cannot say, or say only in a way that would change serialization:
 * the envelope's code and status per answer, headers, an optional body, a status text instead
 * of "Default Response". Works on copies: the route schemas share these objects with the serializer.
 */
function decorateDocument(document: OpenApiDocument): OpenApiDocument {
  const schemesInUse = new Set<string>();
  for (const pathItem of Object.values(document.paths ?? {})) {
    if (!pathItem) continue;
    for (const method of METHODS) {
      const operation = pathItem[method];
      if (!operation) continue;
      decorateRequestBody(operation);
      for (const [status, response] of Object.entries<JsonObject>(operation.responses ?? {})) {
        operation.responses[status] = decorateResponse(Number(status), response);
      }
      for (const requirement of (operation.security ?? []) as Array<Record<string, string[]>>) {
        for (const name of Object.keys(requirement)) schemesInUse.add(name);
      }
    }
  }
  // Every scheme is declared once, above; the document lists those some route uses.
  const schemes = document.components?.securitySchemes;
  if (schemes) {
    document.components = { ...document.components, securitySchemes: Object.fromEntries(Object.entries(schemes).filter(([name]) => schemesInUse.has(name))) };
  }
  return document;
}

function decorateRequestBody(operation: JsonObject): void {
  const content = operation.requestBody?.content as Record<string, JsonObject> | undefined;
  if (!content) return;
  let optional = false;
  for (const [type, media] of Object.entries(content)) {
    if (!media.schema?.[OPTIONAL_BODY]) continue;
    const { [OPTIONAL_BODY]: _marker, ...schema } = media.schema;
    content[type] = { ...media, schema };
    optional = true;
  }
  if (optional) operation.requestBody = { ...operation.requestBody, required: false };
}

function decorateResponse(status: number, response: JsonObject): JsonObject {
  const decorated: JsonObject = { ...response };
  if (decorated.description === 'Default Response') decorated.description = STATUS_CODES[status] ?? 'Answer';
  const headers: JsonObject = { ...decorated.headers };
  if (status === 429 || status === 503) headers['Retry-After'] ??= RETRY_AFTER;
  if (status === 401) headers['WWW-Authenticate'] ??= WWW_AUTHENTICATE;
  if (Object.keys(headers).length > 0) decorated.headers = headers;

  const json = decorated.content?.['application/json'] as JsonObject | undefined;
  if (json && isEnvelope(json.schema)) {
    const properties = {
      ...json.schema.properties,
      status: { ...json.schema.properties.status, type: 'boolean', const: status < 400 },
      code: { ...json.schema.properties.code, type: 'integer', const: status },
    };
    decorated.content = { ...decorated.content, 'application/json': { ...json, schema: { ...json.schema, properties } } };
  }
  return decorated;
}

function isEnvelope(schema: JsonObject | undefined): schema is JsonObject {
  const properties = schema?.properties as JsonObject | undefined;
  return !!properties && ['status', 'code', 'message', 'data'].every((name) => name in properties);
}
