export { createPasswordHasher, OWASP_ARGON2ID } from './hasher.ts';
export type { Argon2Parameters, PasswordHasher, VerifyResult } from './hasher.ts';
export type { HashingJobTiming, HashingPoolOptions, HashingPoolStats, JobOptions, QueueFullReport } from './hashing-pool.ts';
export { createPasswordPolicy } from './policy.ts';
export type { PasswordIdentity, PasswordPolicy, PasswordPolicyOptions, PasswordProblem, PasswordRule } from './policy.ts';
