// Named request and answer types, all taken from the generated OpenAPI types, so they cannot drift from the server.
import type { components, operations } from './generated/openapi.ts';

type JsonBody<T> = T extends { content: { 'application/json': infer Body } } ? Body : never;
type RequestBody<Operation> = Operation extends { requestBody?: infer Body } ? JsonBody<NonNullable<Body>> : never;

export type SignupRequest = RequestBody<operations['signUp']>;
export type SignupAnswer = JsonBody<operations['signUp']['responses'][201]>;
/** A user as Gatehouse shows it: id, name, email, roles, created_at. */
export type PublicUser = NonNullable<SignupAnswer['data']>;

export type LoginRequest = RequestBody<operations['logIn']>;
/** The answer of /login and /token/refresh: the envelope with the user, plus the token fields. */
export type TokenAnswer = JsonBody<operations['logIn']['responses'][201]>;
/** The user as /login answers it: id, email, name. */
export type LoginUser = NonNullable<TokenAnswer['data']>;
/** The 200 answer of /login for an account with two-factor authentication: a ticket, no tokens. */
export type MfaRequiredAnswer = JsonBody<operations['logIn']['responses'][200]>;
/** Its data: mfa_required, mfa_ticket, expires_in. */
export type MfaChallenge = NonNullable<MfaRequiredAnswer['data']>;
/** The second step of a login: the ticket, a TOTP or recovery code, and the client the login named. */
export type LoginMfaRequest = RequestBody<operations['logInMfa']>;

export type RefreshRequest = RequestBody<operations['refreshToken']>;
export type LogoutRequest = RequestBody<operations['logOut']>;
export type ChangePasswordRequest = RequestBody<operations['changePassword']>;
export type MeAnswer = JsonBody<operations['getMe']['responses'][200]>;
/** GET /users: the seed's list shape, without the envelope. */
export type UserPage = JsonBody<operations['listUsers']['responses'][200]>;
export type UsersQuery = NonNullable<operations['listUsers']['parameters']['query']>;

/** Every error answer of Gatehouse's own routes. */
export type ErrorEnvelope = components['schemas']['ErrorEnvelope'];
export type FieldError = NonNullable<NonNullable<ErrorEnvelope['data']>['errors']>[number];

export type { components, operations, paths } from './generated/openapi.ts';
