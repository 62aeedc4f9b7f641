import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { TrustProxy } from '../config.ts';
import type { Deps } from '../deps.ts';
import { envelope } from './envelope.ts';
import { handleError } from './errors.ts';
import { metricsRoutes, registerMetrics } from '../metrics/metrics.ts';
import { emailRoutes } from './routes/account-email.ts';
import { adminConsoleRoutes } from './routes/admin-console.ts';
import { adminKeysClientsRoutes } from './routes/admin-keys-clients.ts';
import { adminUserRoutes } from './routes/admin-users.ts';
import { auditRoutes } from './routes/audit.ts';
import { authRoutes } from './routes/auth.ts';
import { metaRoutes } from './routes/meta.ts';
import { mfaRoutes } from './routes/mfa.ts';
import { passkeyRoutes } from './routes/passkeys.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { revocationRoutes } from './routes/revocations.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { userRoutes } from './routes/users.ts';
import { wellKnownRoutes } from './routes/well-known.ts';
import { answerUnknownExpectation, createClientErrorHandler } from './client-errors.ts';
import { REDACTED_PATHS, serializeRequest } from './logging.ts';
import { registerDocumentRoute, registerSharedResponses, swaggerOptions, swaggerUiOptions } from './openapi.ts';
import { registerRequestChecks } from './request-checks.ts';
import { registerSecurityHeaders } from './security-headers.ts';
import { redactUrl } from './url-secrets.ts';
import { registerJsonOnly, validatorCompiler } from './validation.ts';

export interface AppOptions {
  /** false silences logs (tests); otherwise pino at the configured level. */
  logger?: boolean;
  /** Where log lines go instead of stdout; tests read them to prove secrets stay out. */
  logStream?: { write(line: string): void };
}

export { REDACTED_PATHS } from './logging.ts';

function fastifyTrustProxy(trustProxy: TrustProxy): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (trustProxy === false) return false;
  if ('hops' in trustProxy) {
    const { hops } = trustProxy;
    // Hop 0 is the socket peer; trusting hops 0..N-1 takes the address N proxies reported.
    return (_address, hop) => hop < hops;
  }
  return [...trustProxy.addresses];
}

export async function buildApp(deps: Deps, options: AppOptions = {}): Promise<FastifyInstance> {
  const logger: FastifyServerOptions['logger'] =
    options.logger === false
      ? false
      : {
          level: deps.config.logLevel,
          redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
          serializers: { req: serializeRequest },
          ...(options.logStream ? { stream: options.logStream } : {}),
        };
  const logsRequests = options.logger !== false && ['trace', 'debug', 'info'].includes(deps.config.logLevel);
  const app: FastifyInstance = Fastify({
    logger,
    bodyLimit: deps.config.limits.bodyLimitBytes,
    // proxy-addr semantics: the client is the rightmost X-Forwarded-For address not in the trusted list.
    trustProxy: fastifyTrustProxy(deps.config.trustProxy),
    // One cheap line per request from onResponse instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify builds a child logger per request (for its reqId), ~3 % of a cached-token GET. Below
    // info level nothing is logged per request, so requests share the root logger instead.
    ...(logsRequests ? {} : { childLoggerFactory: (logger) => logger }),
    routerOptions: { maxParamLength: 200 },
    // Errors the router raises before routing (a malformed URL) get the envelope too.
    frameworkErrors: (error, request, reply) => {
      handleError(error, request, reply);
    },
    // Requests the HTTP parser refuses (431, malformed) get the envelope too, written on the raw socket.
    clientErrorHandler: createClientErrorHandler(() => app.log),
    // Node would answer a missing Host with an empty 400 of its own; registerRequestChecks answers instead.
    http: { requireHostHeader: false },
  });
  app.server.on('checkExpectation', answerUnknownExpectation);

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(envelope(404, 'not found')));
  app.decorateRequest('auth', null);
  registerJsonOnly(app);

  registerSecurityHeaders(app);
  registerRequestChecks(app);
  // One line per request, and no hook at all when the level would drop it.
  if (logsRequests) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.info({ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
      done();
    });
  }

  if (deps.config.corsOrigins.length > 0) {
    // Only the origins listed in CORS_ORIGINS; with none listed no CORS header is ever sent.
    await app.register(cors, {
      origin: [...deps.config.corsOrigins],
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['content-type', 'authorization', 'x-access-token'],
      maxAge: 600,
    });
  }

  // Before the routes: the request hooks must see every route (latency by route and status).
  await registerMetrics(app, deps);
  await app.register(swagger, swaggerOptions(deps.config));
  registerSharedResponses(app);

  await app.register(async (routes) => {
    await metaRoutes(routes, deps);
    await authRoutes(routes, deps);
    await sessionRoutes(routes, deps);
    await userRoutes(routes, deps);
    await wellKnownRoutes(routes, deps);
    await revocationRoutes(routes, deps);
    await oauthRoutes(routes, deps);
    await adminUserRoutes(routes, deps);
    await auditRoutes(routes, deps);
    await adminKeysClientsRoutes(routes, deps);
    await metricsRoutes(routes, deps);
    await adminConsoleRoutes(routes, deps);
    await emailRoutes(routes, deps);
    await mfaRoutes(routes, deps);
    await passkeyRoutes(routes, deps);
  });

  registerDocumentRoute(app);
  await app.register(swaggerUi, swaggerUiOptions);
  return app;
}
