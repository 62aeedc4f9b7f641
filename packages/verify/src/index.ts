export { createVerifier } from './verifier.ts';
export type {
  Algorithm,
  ExpressMiddleware,
  FastifyHook,
  FastifyInstanceLike,
  FastifyPlugin,
  RequestLike,
  RevocationFeedOptions,
  Verifier,
  VerifierOptions,
  VerifierStatus,
} from './verifier.ts';
export type { Claims, ClientClaims, UserClaims } from './claims.ts';
export { VerifyError, isVerifyError, bearerChallenge } from './errors.ts';
export type { VerifyErrorCode, OAuthErrorCode } from './errors.ts';
export { requireClient, requireRole, requireScope, requireUser } from './guards.ts';
export type { AuthenticatedRequest, Guard } from './guards.ts';
export { tokenFromHeaders } from './http.ts';
export type { FastifyReplyLike, NodeResponseLike, RequestHeaders } from './http.ts';
export type { RevocationFeedStatus } from './revocations.ts';
export { metadataUrl } from './keys.ts';
