import { useEffect, useRef, useState } from 'preact/hooks';
import { queryOf, type AdminApi, type AuditEvent, type AuditFilters } from '../api.ts';
import { ErrorNotice, Link, PageHeading, Time } from '../components.tsx';
import { isoFromLocalInput, messageOf } from '../format.ts';
import { navigate } from '../router.ts';

// AuditAction in packages/server/src/audit/events.ts.
const ACTIONS = [
  'user.signup',
  'user.login',
  'user.login_failed',
  'user.lockout',
  'user.logout',
  'user.password_change',
  'session.refresh',
  'session.refresh_reuse',
  'token.revoke',
  'client.token',
  'admin.user_create',
  'admin.user_update',
  'admin.user_delete',
  'admin.session_revoke',
  'admin.user_sessions_revoke',
  'admin.users_import',
  'key.rotate',
  'key.reencrypt',
  'client.create',
  'client.rotate_secret',
  'client.disable',
  'client.enable',
  'client.delete',
];

const FILTER_NAMES = ['action', 'user_id', 'outcome', 'since', 'until'] as const;

function filtersOf(query: URLSearchParams): AuditFilters {
  return Object.fromEntries(FILTER_NAMES.map((name) => [name, query.get(name) ?? ''])) as AuditFilters;
}

/** "2026-06-01T12:00:00.000Z" as a datetime-local value, in the browser's time zone. */
function localInputOf(iso: string | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/** The audit log, newest first: filters in the address, "Load more" follows next_cursor. */
export function AuditPage(props: { api: AdminApi; query: URLSearchParams }) {
  const filters = filtersOf(props.query);
  const [form, setForm] = useState({ ...filters, since: localInputOf(filters.since), until: localInputOf(filters.until) });
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [error, setError] = useState('');
  const firstNew = useRef<HTMLTableRowElement>(null);
  const [focusFrom, setFocusFrom] = useState<number | null>(null);

  const load = async (cursor: string | null) => {
    setError('');
    try {
      const page = await props.api.listAudit(filters, cursor);
      setEvents((previous) => (cursor && previous ? [...previous, ...page.events] : page.events));
      setNextCursor(page.next_cursor);
      // The first row this page added: the rows before it are the ones already shown.
      if (cursor) setFocusFrom(events?.length ?? 0);
    } catch (failure) {
      setError(messageOf(failure));
    }
  };
  useEffect(() => {
    void load(null);
  }, []);
  // After "Load more", the focus moves to the first event it added (the button may be gone).
  useEffect(() => {
    if (focusFrom !== null) firstNew.current?.focus();
  }, [focusFrom]);

  const search = (event: Event) => {
    event.preventDefault();
    const query = queryOf({ ...form, since: isoFromLocalInput(form.since ?? ''), until: isoFromLocalInput(form.until ?? '') });
    // The same filters again: the address stays, so reload here (new events may have come in).
    if (query === queryOf({ ...filters })) void load(null);
    else navigate(`/audit${query}`, { replace: true });
  };
  const field = (name: keyof AuditFilters) => ({
    id: `audit-${name}`,
    value: form[name] ?? '',
    onInput: (event: Event) => setForm({ ...form, [name]: (event.currentTarget as HTMLInputElement).value }),
  });

  return (
    <>
      <PageHeading>Audit log</PageHeading>
      <form class="filters" role="search" aria-label="Filter audit events" onSubmit={search}>
        <div class="field">
          <label for="audit-action">Action</label>
          <select {...field('action')} onChange={field('action').onInput}>
            <option value="">Any</option>
            {ACTIONS.map((action) => (
              <option key={action} value={action}>
                {action}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="audit-user_id">User id</label>
          <input type="text" inputMode="numeric" pattern="[0-9]*" {...field('user_id')} />
        </div>
        <div class="field">
          <label for="audit-outcome">Outcome</label>
          <select {...field('outcome')} onChange={field('outcome').onInput}>
            <option value="">Any</option>
            <option value="success">Success</option>
            <option value="failure">Failure</option>
          </select>
        </div>
        <div class="field">
          <label for="audit-since">Since</label>
          <input type="datetime-local" {...field('since')} />
        </div>
        <div class="field">
          <label for="audit-until">Until</label>
          <input type="datetime-local" {...field('until')} />
        </div>
        <button type="submit" class="primary">
          Filter
        </button>
      </form>
      <ErrorNotice message={error} />
      <p class="muted" aria-live="polite">
        {events === null ? 'Loading…' : `${events.length} ${events.length === 1 ? 'event' : 'events'} shown${nextCursor ? ', more to load' : ''}.`}
      </p>
      {events && events.length > 0 ? (
        <table class="audit">
          <caption class="visually-hidden">Audit events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Action</th>
              <th scope="col">Outcome</th>
              <th scope="col">Actor</th>
              <th scope="col">Subject</th>
              <th scope="col">IP</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event, index) => (
              <tr key={event.id} ref={index === focusFrom ? firstNew : undefined} tabIndex={index === focusFrom ? -1 : undefined}>
                <td>
                  <Time value={event.occurred_at} />
                </td>
                <td>
                  <code>{event.action}</code>
                </td>
                <td>{event.outcome === 'failure' ? <span class="badge badge-off">failure{event.reason ? `: ${event.reason}` : ''}</span> : 'success'}</td>
                <td>{partyOf(event.actor)}</td>
                <td>{event.subject ? partyOf(event.subject) : '—'}</td>
                <td>{event.ip ?? '—'}</td>
                <td>
                  <Details details={event.details} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {nextCursor ? (
        <button type="button" onClick={() => load(nextCursor)}>
          Load more events
        </button>
      ) : null}
    </>
  );
}

/** A user links to their page; anything else is its type and id. */
function partyOf(party: { type: string; id: string | null }) {
  if (party.type === 'user' && party.id && /^\d+$/.test(party.id)) return <Link to={`/users/${party.id}`}>user {party.id}</Link>;
  return party.id ? `${party.type} ${party.id}` : party.type;
}

/** before/after as "field: old → new"; other details as key: value. */
function Details(props: { details: Record<string, unknown> | null }) {
  const details = props.details;
  if (!details || Object.keys(details).length === 0) return <span>—</span>;
  const before = (details.before ?? {}) as Record<string, unknown>;
  const after = (details.after ?? {}) as Record<string, unknown>;
  const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const rest = Object.entries(details).filter(([name]) => name !== 'before' && name !== 'after');
  return (
    <ul class="details">
      {changed.map((name) => (
        <li key={`change-${name}`}>
          {name}: {text(before[name])} → {text(after[name])}
        </li>
      ))}
      {rest.map(([name, value]) => (
        <li key={name}>
          {name}: {text(value)}
        </li>
      ))}
    </ul>
  );
}

function text(value: unknown): string {
  if (value === undefined) return '—';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
