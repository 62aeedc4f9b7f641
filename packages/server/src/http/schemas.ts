import { Type } from '@sinclair/typebox';
import { ClientRequestFields } from './client-params.ts';

// Control characters (NUL included) and lone surrogates (not Unicode text) have no place in names or emails.
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]*$';
// A lone surrogate would be hashed as U+FFFD, so two different passwords would match one hash.
export const WELL_FORMED = '^[^\\ud800-\\udfff]*$';

export const SignupBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: PRINTABLE }),
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false },
);

export const LoginBody = Type.Object(
  {
    // PRINTABLE: a NUL byte would otherwise reach PostgreSQL, which refuses it in text with a 500.
    email: Type.String({ minLength: 1, maxLength: 254, pattern: PRINTABLE }),
    password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }),
    ...ClientRequestFields,
  },
  { additionalProperties: false },
);

export const PublicUserSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  email: Type.String(),
  roles: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
});

export const LoginUserSchema = Type.Object({ id: Type.Integer(), email: Type.String(), name: Type.String() });

export const TokenFields = {
  token: Type.String({ description: 'Access token (JWT)' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.String({ description: 'Opaque, single-use refresh token' }),
};

export const UsersQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const UserListSchema = Type.Object({
  users: Type.Array(Type.Object({ id: Type.Integer(), email: Type.String() })),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

export const BEARER_SECURITY: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { accessTokenHeader: [] }];
