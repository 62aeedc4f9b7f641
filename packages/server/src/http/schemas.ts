import { Type } from '@sinclair/typebox';

// Control characters (NUL included) have no place in names or emails.
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';

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
    email: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
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
