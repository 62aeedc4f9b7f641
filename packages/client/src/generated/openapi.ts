// Generated from Gatehouse's OpenAPI document by `npm run generate:client-types`; do not edit.
// CI runs `npm run check:client-types`, which fails when this file differs from what the server generates.
export interface paths {
    "/": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The seed's greeting, as text */
        get: operations["greet"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the process answers */
        get: operations["checkLiveness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: the database answers (503 when not); shared dependencies such as Redis are reported, and being down only degrades */
        get: operations["checkReadiness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/signup": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create an account
         * @description Passwords need at least 15 characters (PASSWORD_MIN_LENGTH), no composition rules; common, breached or easily guessed passwords and ones equal to the email or name are refused with a 400 that says why.
         */
        post: operations["signUp"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/login": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Exchange email and password for an access token and a refresh token
         * @description The same 403 answers an unknown email, a wrong password and a disabled account. After LOGIN_MAX_FAILURES failures in a row an account answers 429 for a while, even to the right password. An account with two-factor authentication answers 200 with an MFA ticket instead of tokens (only after the right password): finish with POST /login/mfa.
         */
        post: operations["logIn"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/token/refresh": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Spend a refresh token for a new access token and a new refresh token
         * @description Refresh tokens are single use. Presenting one again within REFRESH_REUSE_GRACE seconds (a lost answer) returns the same new pair; presenting it later revokes the whole session (reuse detection).
         */
        post: operations["refreshToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/logout": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Revoke this session, or every session of the user with {"all": true}
         * @description The body is optional. The session's refresh token stops working at once, and Gatehouse refuses its access tokens until they expire.
         */
        post: operations["logOut"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/password": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Change the password; every other session of the user is revoked */
        post: operations["changePassword"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List users (seed shape, no envelope), by cursor: admins see everyone, others themselves (USERS_LIST=all: everyone sees all)
         * @description An admin gets every field of each user (AdminUser) and may filter by email prefix, role and disabled; others get id and email only, and a filter answers 403.
         */
        get: operations["listUsers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The signed-in user */
        get: operations["getMe"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/.well-known/jwks.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Public signing keys (empty with HS256) */
        get: operations["getJwks"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/.well-known/oauth-authorization-server": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Authorization server metadata (RFC 8414) */
        get: operations["getAuthorizationServerMetadata"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/.well-known/openid-configuration": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The RFC 8414 metadata again, for JWT middlewares that only look here (Gatehouse is not an OpenID Provider) */
        get: operations["getOpenIdConfiguration"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/revocations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Sessions revoked since a cursor (long poll), for resource servers that verify tokens locally
         * @description Authenticated as a confidential client (HTTP Basic, client_secret_basic). Without `since`, or with a cursor this instance cannot serve (another instance, a restart, too old), answers a snapshot of every session still refused (`reset: true`). With `wait`, a request with nothing new waits up to that many seconds for the next revocation.
         */
        get: operations["listRevocations"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/oauth/token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** OAuth 2.0 token endpoint (RFC 6749): password, refresh_token and client_credentials grants */
        post: operations["requestToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/introspect": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Token introspection (RFC 7662) for confidential clients: the claims of a live access token, else {"active": false} */
        post: operations["introspectToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/revoke": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Token revocation (RFC 7009): ends the session of a refresh or access token issued to this client; 200 whatever the token's state */
        post: operations["revokeToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/users/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A user, as an admin sees it */
        get: operations["getUser"];
        put?: never;
        post?: never;
        /** Delete a user; its sessions end first */
        delete: operations["deleteUser"];
        options?: never;
        head?: never;
        /**
         * Change a user's name, email, roles or disabled state
         * @description Disabling, taking a role away or changing the email revokes every session of the user (enabling again does not bring them back). The last enabled admin cannot lose the admin role or be disabled (409).
         */
        patch: operations["updateUser"];
        trace?: never;
    };
    "/users/{id}/sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A user's sessions, newest first (at most 500) */
        get: operations["listUserSessions"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/users/{id}/sessions/revoke": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** End every session of a user (refresh tokens stop working, access tokens are refused) */
        post: operations["revokeUserSessions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sessions/{sid}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** End one session (an ended one stays as it was) */
        delete: operations["revokeSession"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Audit events, newest first: filter by action, actor, subject, user (as actor or subject), outcome and time; page by cursor */
        get: operations["listAuditEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The signing keys still published (pending, active, retired), newest first */
        get: operations["listSigningKeys"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/keys/rotate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A new signing key: published now, signing from activates_at (at once with now: true), as `gatehouse keys rotate` does */
        post: operations["rotateSigningKey"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/clients": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The registered clients (never their secrets) */
        get: operations["listClients"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/clients/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /** Disable or enable a client; disabling ends its sessions for good (enabling does not bring them back) */
        patch: operations["updateClient"];
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics (text exposition format), with METRICS_TOKEN as a bearer token; 404 when METRICS_TOKEN is unset or METRICS_PORT serves them */
        get: operations["getMetrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/email/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Confirm the email address with the token of the emailed link
         * @description The link (PUBLIC_URL/account/verify-email?token=…) works once, for 24 hours, and only while the account still has that address.
         */
        post: operations["verifyEmail"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/email/verify/resend": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send the verification link again
         * @description With an access token: to the signed-in user (the answer says when the address is verified already). Without one: to {email}, with the same answer whether or not the address has an account. At most 3 messages per address and hour.
         */
        post: operations["resendVerificationEmail"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/password/forgot": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Email a password-reset link
         * @description Always the same 200, equally fast, whether or not the address has an account (the lookup and the message happen after the answer). The link works once, for 15 minutes. At most 3 messages per address and hour; 20 requests per client network and hour.
         */
        post: operations["forgotPassword"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/password/reset": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Set a new password with the token of the emailed link; every session of the user ends
         * @description The password policy applies as at signup; a refused password leaves the link usable. The link proves the mailbox, so the address counts as verified afterwards. Disabled accounts cannot reset.
         */
        post: operations["resetPassword"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/email": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Ask to move the account to another address; a confirmation link goes to the new one
         * @description Nothing changes until the link (1 hour, once) is opened. The answer is the same whether the new address is free or taken; a taken one gets no message. With TOTP on, a code (or a recovery code) is needed besides the password, counted on the second step's run of wrong codes.
         */
        post: operations["requestEmailChange"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/email/change/confirm": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Apply an email change with the token of the link sent to the new address
         * @description The new address is verified by this link. Every session of the user ends (tokens carry the email), and the old address is told.
         */
        post: operations["confirmEmailChange"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/mfa": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Whether two-factor authentication is on, and how many recovery codes are left */
        get: operations["getMfaStatus"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/mfa/totp": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Start TOTP enrolment: a new secret as an otpauth:// URI and a QR code (SVG)
         * @description Re-authentication: the password in the body, unless this session was signed into within REAUTH_MAX_AGE (a stolen access token alone cannot add a factor). Starting again replaces an unconfirmed enrolment. The secret is stored encrypted under KEY_ENCRYPTION_SECRET when set. Nothing changes at login until POST /me/mfa/totp/confirm.
         */
        post: operations["enrolTotp"];
        /**
         * Turn TOTP off, with the password and a current code (or a recovery code)
         * @description Recovery codes and half-finished logins go with it.
         */
        delete: operations["disableTotp"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/mfa/totp/confirm": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Confirm enrolment with a first code: turns TOTP on and returns ten single-use recovery codes */
        post: operations["confirmTotp"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/mfa/recovery-codes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Replace the recovery codes with ten new ones, with the password and a current code */
        post: operations["regenerateRecoveryCodes"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/login/mfa": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Finish a login with the MFA ticket and a TOTP code or a recovery code
         * @description A ticket lives 5 minutes, allows 5 tries and works once. Each wrong code also counts as a failed login of the account (LOGIN_MAX_FAILURES), and on a budget of the second step that only a right code clears (not the password): past it, 429. A TOTP code is accepted once: the same code again is refused. Tokens carry amr ["pwd","otp","mfa"] (TOTP) or ["pwd","mfa"] (recovery code).
         */
        post: operations["logInMfa"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/passkeys/register/options": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Start adding a passkey: options for navigator.credentials.create()
         * @description Re-authentication: the password in the body, unless this session was signed into within REAUTH_MAX_AGE (a stolen access token alone cannot add a passkey). A discoverable credential (resident key required) with user verification required, no attestation. The challenge is stored, good once for 5 minutes; the user's passkeys are excluded. At most 20 passkeys per account.
         */
        post: operations["passkeyRegistrationOptions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/passkeys/register/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Finish adding a passkey: the credential navigator.credentials.create() made
         * @description Checked against the challenge it answers (spent here, whatever the outcome), WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS.
         */
        post: operations["passkeyRegistrationVerify"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/passkeys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The signed-in user's passkeys */
        get: operations["listPasskeys"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me/passkeys/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete one of your passkeys; it can no longer sign in */
        delete: operations["deletePasskey"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/login/passkey/options": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Start a passkey sign-in: options for navigator.credentials.get(), no email asked
         * @description A discoverable sign-in (no allowCredentials): the authenticator offers the accounts it holds. challenge_id is good once, for 5 minutes.
         */
        post: operations["passkeyLoginOptions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/login/passkey/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Finish a passkey sign-in: the assertion navigator.credentials.get() made, for tokens
         * @description The same 403 for every refusal (unknown credential, bad signature, wrong origin, counter not moving forward, disabled account, spent or expired challenge). Tokens carry amr ["hwk"|"swk","user","mfa"]. Attempts per client address are limited (429).
         */
        post: operations["passkeyLogin"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** This OpenAPI document (also rendered at /docs) */
        get: operations["getOpenApiDocument"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Error envelope; validation errors list problems in data.errors */
        ErrorEnvelope: {
            /** @constant */
            status: false;
            /** @description Always the HTTP status */
            code: number;
            message: string;
            data: ({
                /** @description What was wrong with the request, field by field (400) */
                errors?: {
                    field: string;
                    message: string;
                }[];
            } & {
                [key: string]: unknown;
            }) | null;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    greet: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Always `flask rest connected` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    checkLiveness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is alive */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "ok",
                     *       "data": {
                     *         "status": "ok"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            status: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    checkReadiness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready to serve */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "ready",
                     *       "data": {
                     *         "database": "up",
                     *         "redis": "up"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: ({
                            database: string;
                        } & {
                            [key: string]: string;
                        }) | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The database does not answer */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": false,
                     *       "code": 503,
                     *       "message": "not ready",
                     *       "data": {
                     *         "database": "down"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: false;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 503;
                        message: string;
                        data: ({
                            database: string;
                        } & {
                            [key: string]: string;
                        }) | null;
                    };
                };
            };
        };
    };
    signUp: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "name": "Ada Lovelace",
                 *       "email": "ada@example.com",
                 *       "password": "lantern quartz meadow fjord 42"
                 *     }
                 */
                "application/json": {
                    name: string;
                    /** Format: email */
                    email: string;
                    password: string;
                };
            };
        };
        responses: {
            /** @description Account created */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "successfully registered",
                     *       "data": {
                     *         "id": 1,
                     *         "name": "Ada Lovelace",
                     *         "email": "ada@example.com",
                     *         "roles": [
                     *           "user"
                     *         ],
                     *         "created_at": "2026-06-01T12:00:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            name: string;
                            email: string;
                            roles: string[];
                            /** Format: date-time */
                            created_at: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or a password the policy refuses (data.errors says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Email already registered */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    logIn: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "email": "ada@example.com",
                 *       "password": "lantern quartz meadow fjord 42"
                 *     }
                 */
                "application/json": {
                    email: string;
                    password: string;
                    /** @description A public client to sign in through (default `gatehouse`) */
                    client_id?: string;
                    /** @description The API the access token is for: JWT_AUDIENCE (default) or one of the client's audiences */
                    audience?: string;
                    /** @description RFC 8707 resource indicator: the same as audience (give one, or both equal) */
                    resource?: string;
                };
            };
        };
        responses: {
            /** @description The password was right and the account has two-factor authentication: no tokens yet, send a code to POST /login/mfa */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "mfa required",
                     *       "data": {
                     *         "mfa_required": true,
                     *         "mfa_ticket": "Qm9vdHN0cmFwIHRpY2tldCBleGFtcGxlIG9ubHkgISEh",
                     *         "expires_in": 300
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @constant */
                            mfa_required: true;
                            /** @description Single use, for POST /login/mfa with a code; only its hash is stored */
                            mfa_ticket: string;
                            /** @description Seconds the ticket stays valid */
                            expires_in: number;
                        } | null;
                    };
                };
            };
            /** @description A new access token and refresh token; the data is the user */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "verification success",
                     *       "data": {
                     *         "id": 1,
                     *         "email": "ada@example.com",
                     *         "name": "Ada Lovelace"
                     *       },
                     *       "token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl",
                     *       "token_type": "Bearer",
                     *       "expires_in": 900,
                     *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                        } | null;
                        /** @description Access token (JWT) */
                        token: string;
                        /** @constant */
                        token_type: "Bearer";
                        /** @description Seconds until the access token expires */
                        expires_in: number;
                        /** @description Opaque, single-use refresh token */
                        refresh_token: string;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Incorrect email or password; data.email echoes the email */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    refreshToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                 *     }
                 */
                "application/json": {
                    refresh_token: string;
                    /** @description A public client to sign in through (default `gatehouse`) */
                    client_id?: string;
                    /** @description The API the access token is for: JWT_AUDIENCE (default) or one of the client's audiences */
                    audience?: string;
                    /** @description RFC 8707 resource indicator: the same as audience (give one, or both equal) */
                    resource?: string;
                };
            };
        };
        responses: {
            /** @description A new access token and refresh token; the data is the user */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "verification success",
                     *       "data": {
                     *         "id": 1,
                     *         "email": "ada@example.com",
                     *         "name": "Ada Lovelace"
                     *       },
                     *       "token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl",
                     *       "token_type": "Bearer",
                     *       "expires_in": 900,
                     *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                        } | null;
                        /** @description Access token (JWT) */
                        token: string;
                        /** @constant */
                        token_type: "Bearer";
                        /** @description Seconds until the access token expires */
                        expires_in: number;
                        /** @description Opaque, single-use refresh token */
                        refresh_token: string;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The refresh token is unknown, spent, expired or its session revoked */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    logOut: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "all": true
                 *     }
                 */
                "application/json": {
                    /** @description true: every session of the user, not only this token's */
                    all?: boolean;
                };
            };
        };
        responses: {
            /** @description Logged out */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "logged out",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    changePassword: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "current_password": "lantern quartz meadow fjord 42",
                 *       "new_password": "velvet harbor comet 7 quince"
                 *     }
                 */
                "application/json": {
                    current_password: string;
                    new_password: string;
                };
            };
        };
        responses: {
            /** @description Password changed */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "password changed",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body, or a new password the policy refuses (data.errors says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The current password is wrong */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listUsers: {
        parameters: {
            query?: {
                /** @description Page size */
                limit?: number;
                /** @description next_cursor of the previous page */
                cursor?: string;
                /** @description Admins only: users whose email starts with this (any case) */
                email?: string;
                /** @description Admins only: users with this role */
                role?: string;
                /** @description Admins only: true for disabled users, false for enabled ones */
                disabled?: boolean;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of users */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "users": [
                     *         {
                     *           "id": 1,
                     *           "email": "ada@example.com"
                     *         }
                     *       ],
                     *       "next_cursor": null
                     *     }
                     */
                    "application/json": {
                        users: {
                            id: number;
                            email: string;
                            name?: string;
                            roles?: string[];
                            disabled?: boolean;
                            disabled_at?: string | null;
                            /** Format: date-time */
                            created_at?: string;
                            /** Format: date-time */
                            updated_at?: string;
                        }[];
                        /** @description Pass as ?cursor= for the next page; null on the last page */
                        next_cursor: string | null;
                    };
                };
            };
            /** @description Invalid limit, cursor or filter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A filter (email, role, disabled) without the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getMe: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The user */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "success",
                     *       "data": {
                     *         "id": 1,
                     *         "name": "Ada Lovelace",
                     *         "email": "ada@example.com",
                     *         "roles": [
                     *           "user"
                     *         ],
                     *         "created_at": "2026-06-01T12:00:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            id: number;
                            name: string;
                            email: string;
                            roles: string[];
                            /** Format: date-time */
                            created_at: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getJwks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        keys: {
                            [key: string]: unknown;
                        }[];
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getAuthorizationServerMetadata: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        issuer: string;
                        jwks_uri?: string;
                        token_endpoint: string;
                        grant_types_supported: string[];
                        token_endpoint_auth_methods_supported: string[];
                        revocation_endpoint: string;
                        revocation_endpoint_auth_methods_supported: string[];
                        introspection_endpoint: string;
                        introspection_endpoint_auth_methods_supported: string[];
                        service_documentation: string;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getOpenIdConfiguration: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        issuer: string;
                        jwks_uri?: string;
                        token_endpoint: string;
                        grant_types_supported: string[];
                        token_endpoint_auth_methods_supported: string[];
                        revocation_endpoint: string;
                        revocation_endpoint_auth_methods_supported: string[];
                        introspection_endpoint: string;
                        introspection_endpoint_auth_methods_supported: string[];
                        service_documentation: string;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listRevocations: {
        parameters: {
            query?: {
                /** @description The cursor of the previous answer; absent: a snapshot */
                since?: string;
                /** @description Seconds to wait for a revocation when there is nothing new (long poll); 0 answers at once */
                wait?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @description Pass it as `since` in the next request */
                            cursor: string;
                            /** @description true: `revoked` is every session refused now (a snapshot) rather than what is new since `since` */
                            reset: boolean;
                            revoked: {
                                /** @description Session id: refuse access tokens whose `sid` claim is this */
                                sid: string;
                                /** @description Epoch seconds after which every access token of the session has expired: forget it then */
                                exp: number;
                            }[];
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Authentication failed */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    requestToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/x-www-form-urlencoded": {
                    /** @description `password`, `refresh_token` or `client_credentials` */
                    grant_type: string;
                    /** @description password grant: the email */
                    username?: string;
                    password?: string;
                    refresh_token?: string;
                    /** @description client_credentials: some of the client's scopes (default all) */
                    scope?: string;
                    /** @description A public client identifies itself here (default `gatehouse`); a confidential one uses HTTP Basic */
                    client_id?: string;
                    /** @description Not accepted: confidential clients authenticate with HTTP Basic (client_secret_basic) */
                    client_secret?: string;
                    /** @description JWT_AUDIENCE (default) or one of the client's audiences */
                    audience?: string;
                    /** @description RFC 8707 resource indicator: the same as audience (one value) */
                    resource?: string | string[];
                } & {
                    [key: string]: unknown;
                };
            };
        };
        responses: {
            /** @description RFC 6749 section 5.1 token answer, never cached */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl",
                     *       "token_type": "Bearer",
                     *       "expires_in": 900,
                     *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                     *     }
                     */
                    "application/json": {
                        /** @description A user token (password, refresh_token) or a client token (client_credentials) */
                        access_token: string;
                        /** @constant */
                        token_type: "Bearer";
                        /** @description Seconds until the access token expires */
                        expires_in: number;
                        /** @description password and refresh_token grants: the next refresh token (single use) */
                        refresh_token?: string;
                        /** @description client_credentials: the scopes the token carries, space-separated */
                        scope?: string;
                    };
                };
            };
            /** @description invalid_request, invalid_grant (wrong password, an account with two-factor authentication: "mfa required - use POST /login", a refresh token that is spent, unknown or another client's), invalid_scope, invalid_target (an audience the client may not ask for), unauthorized_client or unsupported_grant_type */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_grant",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description invalid_client: client authentication failed (one answer for every reason); WWW-Authenticate: Basic */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_client",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description temporarily_unavailable: too many requests; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description temporarily_unavailable: overloaded or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
        };
    };
    introspectToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl"
                 *     }
                 */
                "application/x-www-form-urlencoded": {
                    token: string;
                    /** @description Ignored: the token is told apart by its shape */
                    token_type_hint?: string;
                } & {
                    [key: string]: unknown;
                };
            };
        };
        responses: {
            /** @description RFC 7662 section 2.2: the claims of a live access token, or {"active": false} and nothing else */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        active: boolean;
                        /** @constant */
                        token_type?: "Bearer";
                        iss?: string;
                        sub?: string;
                        aud?: string;
                        client_id?: string;
                        exp?: number;
                        iat?: number;
                        jti?: string;
                        /** @description client tokens */
                        scope?: string;
                        /** @description user tokens */
                        sid?: string;
                        /** @description user tokens */
                        roles?: string[];
                        /** @description user tokens */
                        email?: string;
                        /** @description user tokens: the email */
                        username?: string;
                    };
                };
            };
            /** @description invalid_request: no token, or a malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_request",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description invalid_client: client authentication failed (one answer for every reason); WWW-Authenticate: Basic */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_client",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description temporarily_unavailable: this client spent its budget (60 000 a minute); Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description temporarily_unavailable: overloaded or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
        };
    };
    revokeToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI",
                 *       "client_id": "web"
                 *     }
                 */
                "application/x-www-form-urlencoded": {
                    token: string;
                    /** @description Ignored: the token is told apart by its shape */
                    token_type_hint?: string;
                    /** @description A public client identifies itself here (default `gatehouse`); a confidential one uses HTTP Basic */
                    client_id?: string;
                    /** @description Not accepted: confidential clients authenticate with HTTP Basic (client_secret_basic) */
                    client_secret?: string;
                } & {
                    [key: string]: unknown;
                };
                /**
                 * @example {
                 *       "token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI",
                 *       "client_id": "web"
                 *     }
                 */
                "application/json": {
                    token: string;
                    /** @description Ignored: the token is told apart by its shape */
                    token_type_hint?: string;
                    /** @description A public client identifies itself here (default `gatehouse`); a confidential one uses HTTP Basic */
                    client_id?: string;
                    /** @description Not accepted: confidential clients authenticate with HTTP Basic (client_secret_basic) */
                    client_secret?: string;
                } & {
                    [key: string]: unknown;
                };
            };
        };
        responses: {
            /** @description Revoked, or nothing to revoke (RFC 7009 section 2.2: the same answer); no body */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description invalid_request (no token), or unsupported_token_type (the client's own client_credentials token) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_request",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description invalid_client: client authentication failed (one answer for every reason); WWW-Authenticate: Basic */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_client",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description temporarily_unavailable: too many requests; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
            /** @description temporarily_unavailable: overloaded or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "temporarily_unavailable",
                     *       "error_description": "what was wrong"
                     *     }
                     */
                    "application/json": {
                        /** @description An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code */
                        error: string;
                        /** @description For developers; never a hint an attacker could use */
                        error_description?: string;
                    };
                };
            };
        };
    };
    getUser: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user id */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The user */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "success",
                     *       "data": {
                     *         "id": 1,
                     *         "name": "Ada Lovelace",
                     *         "email": "ada@example.com",
                     *         "roles": [
                     *           "user"
                     *         ],
                     *         "created_at": "2026-06-01T12:00:00.000Z",
                     *         "disabled": false,
                     *         "disabled_at": null,
                     *         "updated_at": "2026-06-01T12:00:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                            roles: string[];
                            disabled: boolean;
                            disabled_at: string | null;
                            /** Format: date-time */
                            created_at: string;
                            /** Format: date-time */
                            updated_at: string;
                        } | null;
                    };
                };
            };
            /** @description The id is not a positive integer */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No user with this id: user not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    deleteUser: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user id */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The user is deleted */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "user deleted",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description The id is not a positive integer */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No user with this id: user not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The user is the last enabled admin */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    updateUser: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user id */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    name?: string;
                    /** Format: email */
                    email?: string;
                    /** @description Replaces the roles; each must be in ROLES */
                    roles?: string[];
                    /** @description true: refuse the account and end its sessions for good */
                    disabled?: boolean;
                };
            };
        };
        responses: {
            /** @description The user as changed */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "user updated",
                     *       "data": {
                     *         "id": 1,
                     *         "name": "Ada Lovelace",
                     *         "email": "ada@example.com",
                     *         "roles": [
                     *           "user"
                     *         ],
                     *         "created_at": "2026-06-01T12:00:00.000Z",
                     *         "disabled": false,
                     *         "disabled_at": null,
                     *         "updated_at": "2026-06-01T12:00:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                            roles: string[];
                            disabled: boolean;
                            disabled_at: string | null;
                            /** Format: date-time */
                            created_at: string;
                            /** Format: date-time */
                            updated_at: string;
                        } | null;
                    };
                };
            };
            /** @description Unknown field, a role outside ROLES, a blank name, an invalid email, or an id that is not a positive integer */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No user with this id: user not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The email belongs to another user, or the change would leave no enabled admin */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listUserSessions: {
        parameters: {
            query?: {
                /** @description true: only live sessions; false: only revoked or expired ones */
                active?: boolean;
            };
            header?: never;
            path: {
                /** @description The user id */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The sessions */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            sessions: {
                                id: string;
                                client_id: string;
                                /** @description null: JWT_AUDIENCE */
                                audience: string | null;
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                last_refreshed_at: string;
                                /** Format: date-time */
                                expires_at: string;
                                revoked_at: string | null;
                                revoked_reason: string | null;
                            }[];
                        } | null;
                    };
                };
            };
            /** @description The id is not a positive integer, or active is not true or false */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No user with this id: user not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    revokeUserSessions: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user id */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The sessions are ended */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "sessions revoked",
                     *       "data": {
                     *         "revoked": 2
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @description Sessions ended now */
                            revoked: number;
                        } | null;
                    };
                };
            };
            /** @description The id is not a positive integer */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No user with this id: user not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    revokeSession: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id (the sid claim) */
                sid: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The session is ended */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "session revoked",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description The session id is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Signed in without the admin role: forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No session with this id: session not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listAuditEvents: {
        parameters: {
            query?: {
                /** @description e.g. user.login_failed */
                action?: string;
                actor_type?: "user" | "client" | "operator" | "system" | "anonymous";
                actor_id?: string;
                subject_type?: "user" | "session" | "client" | "key";
                subject_id?: string;
                /** @description Events whose actor or subject is this user */
                user_id?: number;
                outcome?: "success" | "failure";
                /** @description ISO 8601, inclusive */
                since?: string;
                /** @description ISO 8601, exclusive */
                until?: string;
                /** @description Page size */
                limit?: number;
                /** @description next_cursor of the previous page */
                cursor?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of audit events */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "success",
                     *       "data": {
                     *         "events": [
                     *           {
                     *             "id": 42,
                     *             "occurred_at": "2026-06-01T12:00:00.000Z",
                     *             "action": "user.login_failed",
                     *             "outcome": "failure",
                     *             "reason": "wrong_password",
                     *             "actor": {
                     *               "type": "anonymous",
                     *               "id": null
                     *             },
                     *             "subject": {
                     *               "type": "user",
                     *               "id": "7"
                     *             },
                     *             "ip": "203.0.113.9",
                     *             "user_agent": "Mozilla/5.0",
                     *             "request_id": "req-1f",
                     *             "details": {
                     *               "email": "ada@example.com",
                     *               "client_id": "gatehouse"
                     *             }
                     *           }
                     *         ],
                     *         "next_cursor": null
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            events: {
                                id: number;
                                /** Format: date-time */
                                occurred_at: string;
                                action: string;
                                outcome: "success" | "failure";
                                reason: string | null;
                                actor: {
                                    type: "user" | "client" | "operator" | "system" | "anonymous";
                                    id: string | null;
                                };
                                subject: {
                                    type: "user" | "session" | "client" | "key";
                                    id: string;
                                } | null;
                                ip: string | null;
                                user_agent: string | null;
                                request_id: string | null;
                                details: {
                                    [key: string]: unknown;
                                } | null;
                            }[];
                            next_cursor: string | null;
                        } | null;
                    };
                };
            };
            /** @description Invalid filter, time or cursor */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description forbidden - admin role required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listSigningKeys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The keys */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            keys: {
                                kid: string;
                                algorithm: string;
                                /** @description pending: published, signs from activates_at; active: signs now (until retired_at, when set); retired: published until expires_at only */
                                state: "pending" | "active" | "retired";
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                activates_at: string;
                                retired_at: string | null;
                                /** @description When it leaves the JWKS (its last token has expired); null while it signs */
                                expires_at: string | null;
                            }[];
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Not an admin (forbidden - admin role required) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    rotateSigningKey: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description Sign with the new key at once (a compromised key), instead of after every cache has seen it */
                    now?: boolean;
                };
            };
        };
        responses: {
            /** @description The new key */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            kid: string;
                            /** Format: date-time */
                            activates_at: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid body, a rotation already pending (send now: true to replace every key at once), or HS256 (keys come from JWT_SECRET) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Not an admin (forbidden - admin role required) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listClients: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The clients */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            clients: {
                                id: string;
                                name: string;
                                type: "public" | "confidential";
                                audiences: string[];
                                scopes: string[];
                                disabled: boolean;
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                updated_at: string;
                            }[];
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Not an admin (forbidden - admin role required) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    updateClient: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "disabled": true
                 *     }
                 */
                "application/json": {
                    disabled: boolean;
                };
            };
        };
        responses: {
            /** @description The client as it is now */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            id: string;
                            name: string;
                            type: "public" | "confidential";
                            audiences: string[];
                            scopes: string[];
                            disabled: boolean;
                            /** Format: date-time */
                            created_at: string;
                            /** Format: date-time */
                            updated_at: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or disabling the default client "gatehouse" (requests without client_id sign in through it) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Not an admin (forbidden - admin role required) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such client */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getMetrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Metrics in the Prometheus text format (version 0.0.4); with WORKERS > 1, the whole cluster */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    verifyEmail: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "Jq3xv2cA0n9yJ2m1b8c7d6e5f4g3h2i1j0k9l8m7n6o"
                 *     }
                 */
                "application/json": {
                    /** @description The token of the emailed link (its ?token= value) */
                    token: string;
                };
            };
        };
        responses: {
            /** @description Address verified */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "email verified",
                     *       "data": {
                     *         "email": "ada@example.com",
                     *         "email_verified": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            email: string;
                            /** @constant */
                            email_verified: true;
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or a token that is unknown, expired, already used or altered */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    resendVerificationEmail: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": {
                    /**
                     * Format: email
                     * @description Without an access token: the address to send to (the answer is the same for any address)
                     */
                    email?: string;
                };
            };
        };
        responses: {
            /** @description Queued, or nothing to send */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "if this address has an account that is not verified yet, a new link is on its way",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body, or neither an access token nor an email */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    forgotPassword: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "email": "ada@example.com"
                 *     }
                 */
                "application/json": {
                    /** Format: email */
                    email: string;
                };
            };
        };
        responses: {
            /** @description Accepted (whether or not the address is registered) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "if an account uses this address, a reset link is on its way",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    resetPassword: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "Jq3xv2cA0n9yJ2m1b8c7d6e5f4g3h2i1j0k9l8m7n6o",
                 *       "new_password": "lantern quartz meadow fjord 42"
                 *     }
                 */
                "application/json": {
                    /** @description The token of the emailed link (its ?token= value) */
                    token: string;
                    new_password: string;
                };
            };
        };
        responses: {
            /** @description Password set; sign in with it */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "password reset",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body, a password the policy refuses (data.errors says why), or a token that is unknown, expired, used or altered */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    requestEmailChange: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "new_email": "ada.lovelace@example.org",
                 *       "password": "lantern quartz meadow fjord 42"
                 *     }
                 */
                "application/json": {
                    /** Format: email */
                    new_email: string;
                    password: string;
                    /** @description With two-factor authentication on: the 6 digits the authenticator app shows now, or a recovery code */
                    code?: string;
                };
            };
        };
        responses: {
            /** @description Confirmation sent to the new address */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 202,
                     *       "message": "confirmation sent to the new address",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 202;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body, or the current address */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The password or the code is wrong, or (TOTP on) no code was sent: reauthentication_required with data.second_factor_required */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    confirmEmailChange: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "Jq3xv2cA0n9yJ2m1b8c7d6e5f4g3h2i1j0k9l8m7n6o"
                 *     }
                 */
                "application/json": {
                    /** @description The token of the emailed link (its ?token= value) */
                    token: string;
                };
            };
        };
        responses: {
            /** @description Address changed */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "email changed",
                     *       "data": {
                     *         "email": "ada.lovelace@example.org",
                     *         "email_verified": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            email: string;
                            /** @constant */
                            email_verified: true;
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or a token that is unknown, expired, already used or altered */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The address was registered by someone else meanwhile */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getMfaStatus: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Two-factor authentication of the signed-in user */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "two-factor status",
                     *       "data": {
                     *         "totp": {
                     *           "enabled": true,
                     *           "pending": false,
                     *           "confirmed_at": "2026-06-01T12:00:00.000Z"
                     *         },
                     *         "recovery_codes_remaining": 9
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            totp: {
                                /** @description Login asks for a code */
                                enabled: boolean;
                                /** @description Enrolled but not confirmed yet */
                                pending: boolean;
                                confirmed_at: string | null;
                            };
                            recovery_codes_remaining: number;
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    enrolTotp: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": {
                    /** @description Required unless this session was signed into within REAUTH_MAX_AGE (5 minutes) */
                    password?: string;
                    /** @description With the password, when the account has TOTP on: the 6 digits the app shows now, or a recovery code */
                    code?: string;
                };
            };
        };
        responses: {
            /** @description A new secret, not asked for at login until POST /me/mfa/totp/confirm */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "scan the code, then confirm",
                     *       "data": {
                     *         "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                     *         "otpauth_uri": "otpauth://totp/Gatehouse:ada%40example.com?issuer=Gatehouse&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30",
                     *         "qr_svg": "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 37 37\">…</svg>"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @description base32, for apps that cannot scan (type it in) */
                            secret: string;
                            /** @description otpauth://totp/… (Key Uri Format): SHA1, 6 digits, 30 s */
                            otpauth_uri: string;
                            /** @description The URI as a QR code, an SVG document */
                            qr_svg: string;
                        } | null;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No password and the session was signed into longer ago than REAUTH_MAX_AGE, or (TOTP on) without a second factor (`reauthentication required - send your password (and a code, with two-factor authentication on), or sign in again`, data.reauthentication_required, data.second_factor_required); or a wrong password or code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Two-factor authentication is already on: disable it first */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    disableTotp: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "password": "lantern quartz meadow fjord 42",
                 *       "code": "492039"
                 *     }
                 */
                "application/json": {
                    password: string;
                    /** @description The 6 digits the authenticator app shows now, or (where allowed) one of the recovery codes */
                    code: string;
                };
            };
        };
        responses: {
            /** @description Two-factor authentication is off */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "two-factor authentication disabled",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description Invalid body, or a code of the wrong shape */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Incorrect password, or incorrect, reused or spent code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Two-factor authentication is not on */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    confirmTotp: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "code": "492039"
                 *     }
                 */
                "application/json": {
                    /** @description The 6 digits the authenticator app shows now */
                    code: string;
                };
            };
        };
        responses: {
            /** @description Ten single-use recovery codes */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "two-factor authentication enabled",
                     *       "data": {
                     *         "recovery_codes": [
                     *           "k7m2p-x9qrt",
                     *           "a3nvb-4wz8c",
                     *           "hq6ts-2mdy9",
                     *           "p8e3r-vn7kx",
                     *           "bc4zw-t6h2q",
                     *           "u9xme-3rpa7",
                     *           "n2gk8-wz5vd",
                     *           "y6tq3-mbe4s",
                     *           "r5jx9-c2npw",
                     *           "f3hvz-8kt6m"
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @description Shown once; each works once; store them offline */
                            recovery_codes: string[];
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or a code that is not 6 digits */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Incorrect code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Nothing to confirm (no enrolment), or already on */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    regenerateRecoveryCodes: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "password": "lantern quartz meadow fjord 42",
                 *       "code": "492039"
                 *     }
                 */
                "application/json": {
                    password: string;
                    /** @description The 6 digits the authenticator app shows now, or (where allowed) one of the recovery codes */
                    code: string;
                };
            };
        };
        responses: {
            /** @description Ten single-use recovery codes */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "two-factor authentication enabled",
                     *       "data": {
                     *         "recovery_codes": [
                     *           "k7m2p-x9qrt",
                     *           "a3nvb-4wz8c",
                     *           "hq6ts-2mdy9",
                     *           "p8e3r-vn7kx",
                     *           "bc4zw-t6h2q",
                     *           "u9xme-3rpa7",
                     *           "n2gk8-wz5vd",
                     *           "y6tq3-mbe4s",
                     *           "r5jx9-c2npw",
                     *           "f3hvz-8kt6m"
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            /** @description Shown once; each works once; store them offline */
                            recovery_codes: string[];
                        } | null;
                    };
                };
            };
            /** @description Invalid body, or a code of the wrong shape */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Incorrect password, or incorrect, reused or spent code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Two-factor authentication is not on */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    logInMfa: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "mfa_ticket": "Qm9vdHN0cmFwIHRpY2tldCBleGFtcGxlIG9ubHkgISEh",
                 *       "code": "492039"
                 *     }
                 */
                "application/json": {
                    /** @description The ticket POST /login answered */
                    mfa_ticket: string;
                    /** @description The 6 digits the authenticator app shows now, or (where allowed) one of the recovery codes */
                    code: string;
                    /** @description If given, must be the client the login named */
                    client_id?: string;
                };
            };
        };
        responses: {
            /** @description A new access token and refresh token; the data is the user */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "verification success",
                     *       "data": {
                     *         "id": 1,
                     *         "email": "ada@example.com",
                     *         "name": "Ada Lovelace"
                     *       },
                     *       "token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl",
                     *       "token_type": "Bearer",
                     *       "expires_in": 900,
                     *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                        } | null;
                        /** @description Access token (JWT) */
                        token: string;
                        /** @constant */
                        token_type: "Bearer";
                        /** @description Seconds until the access token expires */
                        expires_in: number;
                        /** @description Opaque, single-use refresh token */
                        refresh_token: string;
                    };
                };
            };
            /** @description Invalid body, or a code that is neither 6 digits nor a recovery code */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The ticket is unknown, expired, spent, out of tries or for another client */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Incorrect, reused or spent code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    passkeyRegistrationOptions: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": {
                    /** @description Required unless this session was signed into within REAUTH_MAX_AGE (5 minutes) */
                    password?: string;
                    /** @description With the password, when the account has TOTP on: the 6 digits the app shows now, or a recovery code */
                    code?: string;
                };
            };
        };
        responses: {
            /** @description Creation options (data) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: ({
                            challenge: string;
                            rp: {
                                id?: string;
                                name: string;
                            };
                            user: {
                                id: string;
                                name: string;
                                displayName: string;
                            };
                            pubKeyCredParams: {
                                alg: number;
                                /** @constant */
                                type: "public-key";
                            }[];
                        } & {
                            [key: string]: unknown;
                        }) | null;
                    };
                };
            };
            /** @description Invalid body, or the account has 20 passkeys already */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No password and the session was signed into longer ago than REAUTH_MAX_AGE, or (TOTP on) without a second factor (`reauthentication required - send your password (and a code, with two-factor authentication on), or sign in again`, data.reauthentication_required, data.second_factor_required); or a wrong password or code */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    passkeyRegistrationVerify: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description The PublicKeyCredential from navigator.credentials.create(), as JSON (startRegistration) */
                    response: {
                        /** @description Credential id (base64url) */
                        id: string;
                        rawId: string;
                        /** @constant */
                        type: "public-key";
                        clientExtensionResults: {
                            [key: string]: unknown;
                        };
                        authenticatorAttachment?: "platform" | "cross-platform";
                        response: {
                            clientDataJSON: string;
                            attestationObject: string;
                            transports?: string[];
                            authenticatorData?: string;
                            publicKey?: string;
                            publicKeyAlgorithm?: number;
                        };
                    };
                    /** @description A name to tell passkeys apart (default: "Passkey" and the date) */
                    name?: string;
                };
            };
        };
        responses: {
            /** @description The passkey added */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "passkey registered",
                     *       "data": {
                     *         "id": 3,
                     *         "name": "Laptop",
                     *         "device_type": "multiDevice",
                     *         "backed_up": true,
                     *         "transports": [
                     *           "internal",
                     *           "hybrid"
                     *         ],
                     *         "created_at": "2026-06-01T12:00:00.000Z",
                     *         "last_used_at": null
                     *       }
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            name: string;
                            device_type: string | null;
                            backed_up: boolean;
                            transports: string[];
                            /** Format: date-time */
                            created_at: string;
                            last_used_at: string | null;
                        } | null;
                    };
                };
            };
            /** @description Invalid body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The response does not verify (altered, wrong origin or RP, no user verification, counter not moving forward), or its challenge is unknown, expired (5 min) or already used; the same answer for all */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    listPasskeys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "passkeys",
                     *       "data": [
                     *         {
                     *           "id": 3,
                     *           "name": "Laptop",
                     *           "device_type": "multiDevice",
                     *           "backed_up": true,
                     *           "transports": [
                     *             "internal",
                     *             "hybrid"
                     *           ],
                     *           "created_at": "2026-06-01T12:00:00.000Z",
                     *           "last_used_at": null
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            id: number;
                            name: string;
                            device_type: string | null;
                            backed_up: boolean;
                            transports: string[];
                            /** Format: date-time */
                            created_at: string;
                            last_used_at: string | null;
                        }[] | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    deletePasskey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 200,
                     *       "message": "passkey deleted",
                     *       "data": null
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: null;
                    };
                };
            };
            /** @description The id is not a positive integer */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No access token, or one that is invalid, expired or revoked; WWW-Authenticate says which (RFC 6750) */
            401: {
                headers: {
                    /** @description The authentication scheme, and for a refused token why (RFC 6750 section 3) */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such passkey among yours (another user's id answers the same) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    passkeyLoginOptions: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The challenge to answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 200;
                        message: string;
                        data: {
                            challenge_id: string;
                            /** @description PublicKeyCredentialRequestOptionsJSON: pass to startAuthentication({ optionsJSON }) */
                            options: {
                                challenge: string;
                                rpId?: string;
                            } & {
                                [key: string]: unknown;
                            };
                        } | null;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    passkeyLogin: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description challenge_id from POST /login/passkey/options */
                    challenge_id: string;
                    /** @description The PublicKeyCredential from navigator.credentials.get(), as JSON (startAuthentication) */
                    response: {
                        /** @description Credential id (base64url) */
                        id: string;
                        rawId: string;
                        /** @constant */
                        type: "public-key";
                        clientExtensionResults: {
                            [key: string]: unknown;
                        };
                        authenticatorAttachment?: "platform" | "cross-platform";
                        response: {
                            clientDataJSON: string;
                            authenticatorData: string;
                            signature: string;
                            userHandle?: string;
                        };
                    };
                    /** @description A public client to sign in through (default `gatehouse`) */
                    client_id?: string;
                    /** @description The API the access token is for: JWT_AUDIENCE (default) or one of the client's audiences */
                    audience?: string;
                    /** @description RFC 8707 resource indicator: the same as audience (give one, or both equal) */
                    resource?: string;
                };
            };
        };
        responses: {
            /** @description A new access token and refresh token; the data is the user */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": true,
                     *       "code": 201,
                     *       "message": "verification success",
                     *       "data": {
                     *         "id": 1,
                     *         "email": "ada@example.com",
                     *         "name": "Ada Lovelace"
                     *       },
                     *       "token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl",
                     *       "token_type": "Bearer",
                     *       "expires_in": 900,
                     *       "refresh_token": "kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI"
                     *     }
                     */
                    "application/json": {
                        /**
                         * @description true below 400, false on errors
                         * @constant
                         */
                        status: true;
                        /**
                         * @description Always the HTTP status
                         * @constant
                         */
                        code: 201;
                        message: string;
                        data: {
                            id: number;
                            email: string;
                            name: string;
                        } | null;
                        /** @description Access token (JWT) */
                        token: string;
                        /** @constant */
                        token_type: "Bearer";
                        /** @description Seconds until the access token expires */
                        expires_in: number;
                        /** @description Opaque, single-use refresh token */
                        refresh_token: string;
                    };
                };
            };
            /** @description Invalid body, or an unknown client_id or audience */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The passkey was not accepted (same answer for every reason); or, under REQUIRE_EMAIL_VERIFICATION, the address is unverified */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Body larger than BODY_LIMIT */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unsupported Content-Type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Too many requests from this address, or failed attempts on this account; Retry-After says when to try again */
            429: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Overloaded (password hashing queue full) or the database is unavailable; Retry-After says when to try again */
            503: {
                headers: {
                    /** @description Seconds to wait before trying again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    getOpenApiDocument: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The OpenAPI 3.1 document */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
            /** @description Invalid request: the body, a parameter, or the URL (an access token in the query string, a missing Host) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
}
