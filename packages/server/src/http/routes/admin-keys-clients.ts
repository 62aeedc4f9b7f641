import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_CLIENT_ID, findClient, listClients, setClientDisabled, type Client } from '../../clients/clients.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalidInput, isAppError } from '../../errors.ts';
import { activationOf, keyState } from '../../keys/rotation.ts';
import { findNewestSigningKey, listVerificationKeys, type SigningKeyRow } from '../../storage/signing-keys.ts';
import { revokeSessions } from '../../storage/sessions.ts';
import { createAdminGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { requestContext } from '../request-context.ts';
import { BEARER_SECURITY, UNAUTHENTICATED, UNAVAILABLE } from '../schemas.ts';

const IsoTime = Type.String({ format: 'date-time' });
const NullableIsoTime = Type.Union([IsoTime, Type.Null()]);

const SigningKeySchema = Type.Object({
  kid: Type.String(),
  algorithm: Type.String(),
  state: Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('retired')], {
    description: 'pending: published, signs from activates_at; active: signs now (until retired_at, when set); retired: published until expires_at only',
  }),
  created_at: IsoTime,
  activates_at: IsoTime,
  retired_at: NullableIsoTime,
  expires_at: Type.Union([IsoTime, Type.Null()], { description: 'When it leaves the JWKS (its last token has expired); null while it signs' }),
});

const AdminClientSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: Type.Union([Type.Literal('public'), Type.Literal('confidential')]),
  audiences: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  disabled: Type.Boolean(),
  created_at: IsoTime,
  updated_at: IsoTime,
});

const RotateBody = Type.Object(
  { now: Type.Optional(Type.Boolean({ description: 'Sign with the new key at once (a compromised key), instead of after every cache has seen it' })) },
  { additionalProperties: false },
);
const ClientParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const ClientPatchBody = Type.Object({ disabled: Type.Boolean() }, { additionalProperties: false, examples: [{ disabled: true }] });

const FORBIDDEN = ErrorResponse('Not an admin (forbidden - admin role required)');

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();
const isoOrNull = (epochSeconds: number | null) => (epochSeconds === null ? null : iso(Number(epochSeconds)));

function toKeyView(row: SigningKeyRow, now: number) {
  return {
    kid: row.kid,
    algorithm: row.algorithm,
    state: keyState(row, now),
    created_at: iso(Number(row.created_at)),
    // Keys made before activation times existed sign since their creation.
    activates_at: iso(row.activates_at === null ? Number(row.created_at) : activationOf(row)),
    retired_at: isoOrNull(row.retired_at),
    expires_at: isoOrNull(row.expires_at),
  };
}

function toClientView(client: Client) {
  return {
    id: client.id,
    name: client.name,
    type: client.type,
    audiences: client.audiences,
    scopes: client.scopes,
    disabled: client.disabledAt !== null,
    created_at: iso(client.createdAt),
    updated_at: iso(client.updatedAt),
  };
}

/** Thrown by the key store when a rotation is pending or another won the race: the admin's request, not a fault. */
const ROTATION_REFUSALS = ['a rotation is already pending', 'another rotation was made'];

/** Admin API for signing keys (GET /keys, POST /keys/rotate) and clients (GET /clients, PATCH /clients/:id). */
export async function adminKeysClientsRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const adminGuard = createAdminGuard(deps);
  const adminErrors = { 401: UNAUTHENTICATED, 403: FORBIDDEN, 503: UNAVAILABLE };

  app.get(
    '/keys',
    {
      onRequest: adminGuard,
      schema: {
        operationId: 'listSigningKeys',
        tags: ['keys'],
        summary: 'The signing keys still published (pending, active, retired), newest first',
        security: BEARER_SECURITY,
        response: { 200: EnvelopeSchema(Type.Object({ keys: Type.Array(SigningKeySchema) }), {}, { description: 'The keys' }), ...adminErrors },
      },
    },
    async () => {
      const now = deps.clock.nowSeconds();
      const rows = await listVerificationKeys(deps.db, now);
      return envelope(200, 'success', { keys: rows.map((row) => toKeyView(row, now)) });
    },
  );

  app.post(
    '/keys/rotate',
    {
      onRequest: adminGuard,
      schema: {
        operationId: 'rotateSigningKey',
        tags: ['keys'],
        summary: 'A new signing key: published now, signing from activates_at (at once with now: true), as `gatehouse keys rotate` does',
        security: BEARER_SECURITY,
        body: RotateBody,
        response: {
          200: EnvelopeSchema(Type.Object({ kid: Type.String(), activates_at: IsoTime }), {}, { description: 'The new key' }),
          400: ErrorResponse('Invalid body, a rotation already pending (send now: true to replace every key at once), or HS256 (keys come from JWT_SECRET)'),
          ...adminErrors,
        },
      },
    },
    async (request) => {
      const immediately = request.body?.now === true;
      if (deps.keys.algorithm === 'HS256') {
        throw invalidInput([{ field: 'body', message: 'HS256 signs with JWT_SECRET: rotate by changing the secret' }]);
      }
      const now = deps.clock.nowSeconds();
      const newest = await findNewestSigningKey(deps.db);
      if (!immediately && newest && activationOf(newest) > now) {
        throw invalidInput([{ field: 'now', message: `a rotation is already pending: key ${newest.kid} signs from ${iso(activationOf(newest))}; send now: true to replace every key at once` }]);
      }
      let timeline;
      try {
        timeline = await deps.keys.rotate({ immediately });
      } catch (error) {
        // Another instance rotated between the check above and the insert.
        if (!isAppError(error) && error instanceof Error && ROTATION_REFUSALS.some((text) => error.message.startsWith(text))) {
          throw invalidInput([{ field: 'now', message: error.message }]);
        }
        throw error;
      }
      deps.audit.record({
        action: 'key.rotate',
        actor: { type: 'user', id: String(request.auth!.userId) },
        subject: { type: 'key', id: timeline.kid },
        context: requestContext(request),
        details: { algorithm: timeline.algorithm, immediately, activates_at: iso(timeline.activatesAt), replaces: timeline.replaces.map((old) => old.kid) },
      });
      return envelope(200, 'key rotated', { kid: timeline.kid, activates_at: iso(timeline.activatesAt) });
    },
  );

  app.get(
    '/clients',
    {
      onRequest: adminGuard,
      schema: {
        operationId: 'listClients',
        tags: ['clients'],
        summary: 'The registered clients (never their secrets)',
        security: BEARER_SECURITY,
        response: { 200: EnvelopeSchema(Type.Object({ clients: Type.Array(AdminClientSchema) }), {}, { description: 'The clients' }), ...adminErrors },
      },
    },
    async () => envelope(200, 'success', { clients: (await listClients(deps.db)).map(toClientView) }),
  );

  app.patch(
    '/clients/:id',
    {
      onRequest: adminGuard,
      schema: {
        operationId: 'updateClient',
        tags: ['clients'],
        summary: "Disable or enable a client; disabling ends its sessions for good (enabling does not bring them back)",
        security: BEARER_SECURITY,
        params: ClientParams,
        body: ClientPatchBody,
        response: {
          200: EnvelopeSchema(AdminClientSchema, {}, { description: 'The client as it is now' }),
          400: ErrorResponse(`Invalid body, or disabling the default client "${DEFAULT_CLIENT_ID}" (requests without client_id sign in through it)`),
          404: ErrorResponse('No such client'),
          ...adminErrors,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { disabled } = request.body;
      const before = await findClient(deps.db, id);
      if (!before) throw new AppError('client_not_found', 'client not found');
      if (disabled && id === DEFAULT_CLIENT_ID) {
        throw invalidInput([{ field: 'disabled', message: `the default client "${DEFAULT_CLIENT_ID}" cannot be disabled: requests without client_id sign in through it` }]);
      }
      const wasDisabled = before.disabledAt !== null;
      if (wasDisabled === disabled) return envelope(200, 'client updated', toClientView(before));

      // One transaction: a disabled client never keeps live sessions, an enabled one never loses them.
      const now = deps.clock.nowSeconds();
      const revoked = await deps.db.transaction().execute(async (trx) => {
        if (!(await setClientDisabled({ db: trx, clock: deps.clock }, id, disabled))) throw new AppError('client_not_found', 'client not found');
        return disabled ? revokeSessions(trx, { clientId: id }, now, 'client_disabled') : [];
      });
      if (revoked.length > 0) {
        // As revokeAndDeny does, once the revocation is committed: refused here at once, and by the other processes.
        deps.denylist.addSessions(revoked, now);
        deps.shared.revocations.publish({ sessionIds: revoked, revokedAt: now });
      }
      deps.audit.record({
        action: disabled ? 'client.disable' : 'client.enable',
        actor: { type: 'user', id: String(request.auth!.userId) },
        subject: { type: 'client', id },
        context: requestContext(request),
        details: { before: { disabled: wasDisabled }, after: { disabled }, ...(disabled ? { revoked_sessions: revoked.length } : {}) },
      });
      const after = await findClient(deps.db, id);
      return envelope(200, 'client updated', toClientView(after ?? before));
    },
  );
}
