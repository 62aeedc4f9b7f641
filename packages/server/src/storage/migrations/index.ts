import type { Migration } from 'kysely';
import * as initial from './0001_initial.ts';
import * as signingKeyActivation from './0002_signing_key_activation.ts';
import * as clients from './0003_clients.ts';
import * as sessionClient from './0004_session_client.ts';
import * as auditEvents from './0005_audit_events.ts';
import * as accountSecurity from './0006_account_security.ts';
import * as mfaTicketPassword from './0008_mfa_ticket_password.ts';
import * as legacyFactors from './0009_legacy_factors.ts';

/** Every migration, in order. Names never change once released. */
export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_signing_key_activation': signingKeyActivation,
  '0003_clients': clients,
  '0004_session_client': sessionClient,
  '0005_audit_events': auditEvents,
  '0006_account_security': accountSecurity,
  '0008_mfa_ticket_password': mfaTicketPassword,
  '0009_legacy_factors': legacyFactors,
};
