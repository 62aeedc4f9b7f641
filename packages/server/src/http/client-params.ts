import { Type } from '@sinclair/typebox';

// Printable ASCII without spaces, as client ids, audiences and resource indicators are.
const VISIBLE_ASCII = '^[\\x21-\\x7e]+$';

/**
 * The optional client fields of the JSON /login and /token/refresh bodies. Without them a session
 * belongs to the default public client `gatehouse` and its tokens to JWT_AUDIENCE, as the seed's do.
 */
export const ClientRequestFields = {
  client_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 64, pattern: VISIBLE_ASCII, description: 'A public client to sign in through (default `gatehouse`)' }),
  ),
  audience: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, pattern: VISIBLE_ASCII, description: "The API the access token is for: JWT_AUDIENCE (default) or one of the client's audiences" }),
  ),
  resource: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, pattern: VISIBLE_ASCII, description: 'RFC 8707 resource indicator: the same as audience (give one, or both equal)' }),
  ),
};
