import { Type } from '@sinclair/typebox';
import { ClientRequestFields } from './client-params.ts';
import { ErrorResponse } from './envelope.ts';

// Control characters (NUL included) and lone surrogates (not Unicode text) have no place in names or emails.
export const PRINTABLE = '^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]*$';
// A lone surrogate would be hashed as U+FFFD, so two different passwords would match one hash.
export const WELL_FORMED = '^[^\\ud800-\\udfff]*$';
/** A passphrase the default policy accepts, for the document's examples. */
export const EXAMPLE_PASSWORD = 'lantern quartz meadow fjord 42';

export const SignupBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: PRINTABLE }),
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false, examples: [{ name: 'Ada Lovelace', email: 'ada@example.com', password: EXAMPLE_PASSWORD }] },
);

export const LoginBody = Type.Object(
  {
    // PRINTABLE: a NUL byte would otherwise reach PostgreSQL, which refuses it in text with a 500.
    email: Type.String({ minLength: 1, maxLength: 254, pattern: PRINTABLE }),
    password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }),
    ...ClientRequestFields,
  },
  { additionalProperties: false, examples: [{ email: 'ada@example.com', password: EXAMPLE_PASSWORD }] },
);

export const PublicUserSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  email: Type.String(),
  roles: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
});

export const EXAMPLE_USER = { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', roles: ['user'], created_at: '2026-06-01T12:00:00.000Z' };

export const LoginUserSchema = Type.Object({ id: Type.Integer(), email: Type.String(), name: Type.String() });

export const TokenFields = {
  token: Type.String({ description: 'Access token (JWT)' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.String({ description: 'Opaque, single-use refresh token' }),
};

export const USERS_PAGE_DEFAULT = 50;

/** A role name as ROLES allows it (config.ts ROLE_PATTERN). */
export const RoleName = Type.String({ pattern: '^[a-z][a-z0-9_.:-]{0,63}$', description: 'A role name from ROLES' });

export const UsersQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: USERS_PAGE_DEFAULT, description: 'Page size' })),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'next_cursor of the previous page' })),
    email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, pattern: PRINTABLE, description: 'Admins only: users whose email starts with this (any case)' })),
    role: Type.Optional({ ...RoleName, description: 'Admins only: users with this role' }),
    disabled: Type.Optional(Type.Boolean({ description: 'Admins only: true for disabled users, false for enabled ones' })),
  },
  { additionalProperties: false },
);

const IsoTime = Type.String({ format: 'date-time' });
const IsoTimeOrNull = Type.Union([IsoTime, Type.Null()]);

/** A user as an admin sees it (GET/PATCH /users/:id, and each item of GET /users for an admin). */
export const AdminUserSchema = Type.Object({
  id: Type.Integer(),
  email: Type.String(),
  name: Type.String(),
  roles: Type.Array(Type.String()),
  disabled: Type.Boolean(),
  disabled_at: IsoTimeOrNull,
  created_at: IsoTime,
  updated_at: IsoTime,
});

export const EXAMPLE_ADMIN_USER = {
  ...EXAMPLE_USER,
  disabled: false,
  disabled_at: null,
  updated_at: '2026-06-01T12:00:00.000Z',
};

export const UserListSchema = Type.Object(
  {
    users: Type.Array(
      Type.Object(
        {
          id: Type.Integer(),
          email: Type.String(),
          name: Type.Optional(Type.String()),
          roles: Type.Optional(Type.Array(Type.String())),
          disabled: Type.Optional(Type.Boolean()),
          disabled_at: Type.Optional(IsoTimeOrNull),
          created_at: Type.Optional(IsoTime),
          updated_at: Type.Optional(IsoTime),
        },
        { description: 'id and email; for an admin, every field of AdminUser' },
      ),
    ),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as ?cursor= for the next page; null on the last page' }),
  },
  { description: 'A page of users', examples: [{ users: [{ id: 1, email: 'ada@example.com' }], next_cursor: null }] },
);

/** Error answers several routes share, described once. */
export const TOO_MANY_REQUESTS = ErrorResponse('Too many requests from this address, or failed attempts on this account; Retry-After says when to try again');
export const UNAVAILABLE = ErrorResponse('Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again');
export const UNAUTHENTICATED = ErrorResponse('No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750)');

/** OpenAPI security of the routes anyone may call. */
export const PUBLIC_SECURITY: Array<Record<string, string[]>> = [];
/** A user's access token, as `Authorization: Bearer` or in the seed's `x-access-token` header. */
export const BEARER_SECURITY: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { accessTokenHeader: [] }];
/** A confidential client's id and secret as HTTP Basic (RFC 6749 section 2.3.1, client_secret_basic). */
export const CLIENT_SECURITY: Array<Record<string, string[]>> = [{ clientBasic: [] }];

/** Keyword on a body schema that http/openapi.ts turns into `requestBody.required: false`. */
export const OPTIONAL_BODY = 'x-gatehouse-optional-body';

/** Marks a body schema optional in the OpenAPI document; the route must also treat a missing body as {} (see /logout). */
export function optionalBody<T extends object>(schema: T): T {
  return Object.assign(schema, { [OPTIONAL_BODY]: true });
}

/** The password, unless the session was signed into within REAUTH_MAX_AGE (auth/reauthentication.ts). */
export const ReauthenticationBody = optionalBody(
  Type.Object(
    {
      password: Type.Optional(
        Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED, description: 'Required unless this session was signed into within REAUTH_MAX_AGE (5 minutes)' }),
      ),
      code: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 64,
          description: 'With the password, when the account has TOTP on: the 6 digits the app shows now, or a recovery code',
        }),
      ),
    },
    { additionalProperties: false, examples: [{ password: EXAMPLE_PASSWORD }, { password: EXAMPLE_PASSWORD, code: '492039' }, {}] },
  ),
);
/** The 403 of a route behind requireReauthentication. */
export const REAUTH_REFUSED = ErrorResponse(
  'No password and the session was signed into longer ago than REAUTH_MAX_AGE, or (TOTP on) without a second factor (`reauthentication required - send your password (and a code, with two-factor authentication on), or sign in again`, data.reauthentication_required, data.second_factor_required); or a wrong password or code',
);
