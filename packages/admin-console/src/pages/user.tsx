import { useEffect, useRef, useState } from 'preact/hooks';
import type { AdminApi, AdminUser, UserSession } from '../api.ts';
import type { Announce } from '../app.tsx';
import { ConfirmDialog, ErrorNotice, Link, PageHeading, Time } from '../components.tsx';
import { messageOf } from '../format.ts';
import { navigate } from '../router.ts';

type Pending = 'delete' | 'revoke-all' | null;

/** One user: details and roles, disable/enable, sessions (one or all revoked), delete. */
export function UserPage(props: { api: AdminApi; userId: number; selfId: number; announce: Announce }) {
  const { api, userId, announce } = props;
  const [user, setUser] = useState<AdminUser | null>(null);
  const [sessions, setSessions] = useState<UserSession[] | null>(null);
  const [activeOnly, setActiveOnly] = useState(true);
  const [error, setError] = useState('');
  const [pending, setPending] = useState<Pending>(null);
  // A guard rather than disabled buttons: disabling the focused button would drop the keyboard focus.
  const busy = useRef(false);
  const sessionsHeading = useRef<HTMLHeadingElement>(null);

  const loadSessions = () => api.listSessions(userId, activeOnly).then(setSessions, (failure) => setError(messageOf(failure)));
  useEffect(() => {
    api.getUser(userId).then(setUser, (failure) => setError(messageOf(failure)));
  }, [userId]);
  useEffect(() => {
    void loadSessions();
  }, [userId, activeOnly]);

  /** Runs an action, shows its failure, and refreshes what it changed. */
  const act = async (run: () => Promise<string | undefined>) => {
    if (busy.current) return;
    busy.current = true;
    setError('');
    try {
      const done = await run();
      if (done) announce(done);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      busy.current = false;
    }
  };

  const toggleDisabled = () =>
    act(async () => {
      const updated = await api.updateUser(userId, { disabled: !user?.disabled });
      setUser(updated);
      await loadSessions();
      return updated.disabled ? `${updated.email} is disabled; their sessions are revoked.` : `${updated.email} is enabled again.`;
    });
  const revokeAll = () =>
    act(async () => {
      setPending(null);
      const revoked = await api.revokeUserSessions(userId);
      await loadSessions();
      return `${revoked} ${revoked === 1 ? 'session' : 'sessions'} revoked.`;
    });
  const revokeOne = (session: UserSession) =>
    act(async () => {
      await api.revokeSession(session.id);
      await loadSessions();
      // Its button is gone (with "active only", its row too): the focus would fall to the page's start.
      sessionsHeading.current?.focus();
      return 'Session revoked.';
    });
  const remove = () =>
    act(async () => {
      setPending(null);
      await api.deleteUser(userId);
      announce(`${user?.email ?? `User ${userId}`} was deleted.`, '/users');
      navigate('/users');
      return undefined;
    });

  if (!user) {
    return (
      <>
        <PageHeading>User {userId}</PageHeading>
        <ErrorNotice message={error} />
        {error ? <Link to="/users">Back to the users</Link> : <p>Loading…</p>}
      </>
    );
  }

  return (
    <>
      <p class="breadcrumb">
        <Link to="/users">Users</Link>
      </p>
      <PageHeading>{user.email}</PageHeading>
      <ErrorNotice message={error} />
      <dl class="facts">
        <dt>Id</dt>
        <dd>{user.id}</dd>
        <dt>Status</dt>
        <dd>{user.disabled ? <span class="badge badge-off">disabled since {<Time value={user.disabled_at} />}</span> : <span class="badge">enabled</span>}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={user.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time value={user.updated_at} />
        </dd>
      </dl>
      <p>
        <Link to={`/audit?user_id=${user.id}`}>Audit events of this user</Link>
      </p>

      <DetailsForm key={user.updated_at} api={api} user={user} onSaved={(updated, message) => (setUser(updated), announce(message), loadSessions())} onError={setError} />

      <section aria-labelledby="access-heading">
        <h2 id="access-heading">Access</h2>
        <div class="actions">
          <button type="button" class={user.disabled ? 'primary' : 'danger'} onClick={toggleDisabled}>
            {user.disabled ? 'Enable user' : 'Disable user'}
          </button>
          <button type="button" onClick={() => setPending('revoke-all')}>
            Revoke all sessions
          </button>
          <button type="button" class="danger" onClick={() => setPending('delete')}>
            Delete user
          </button>
        </div>
        <p class="muted">Disabling revokes every session for good: enabling again does not bring them back.</p>
      </section>

      <section aria-labelledby="sessions-heading">
        <h2 id="sessions-heading" ref={sessionsHeading} tabIndex={-1}>
          Sessions
        </h2>
        <label class="inline">
          <input type="checkbox" checked={activeOnly} onChange={(event) => setActiveOnly(event.currentTarget.checked)} /> Active sessions only
        </label>
        {sessions === null ? (
          <p>Loading…</p>
        ) : sessions.length === 0 ? (
          <p>{activeOnly ? 'No active session.' : 'No session.'}</p>
        ) : (
          <table>
            <caption class="visually-hidden">Sessions of {user.email}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">Client</th>
                <th scope="col">Started</th>
                <th scope="col">Last refreshed</th>
                <th scope="col">Expires</th>
                <th scope="col">Revoked</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {sessions.map((session) => (
                <tr key={session.id}>
                  <td>
                    <code>{session.id}</code>
                  </td>
                  <td>{session.client_id ?? '—'}</td>
                  <td>
                    <Time value={session.created_at} />
                  </td>
                  <td>
                    <Time value={session.last_refreshed_at} />
                  </td>
                  <td>
                    <Time value={session.expires_at} />
                  </td>
                  <td>{session.revoked_at ? <>{<Time value={session.revoked_at} />} ({session.revoked_reason ?? 'no reason'})</> : '—'}</td>
                  <td>
                    {session.revoked_at ? null : (
                      <button type="button" aria-label={`Revoke session ${session.id}`} onClick={() => revokeOne(session)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <ConfirmDialog
        open={pending === 'delete'}
        title={`Delete ${user.email}?`}
        confirmLabel="Delete user"
        danger
        onConfirm={remove}
        onCancel={() => setPending(null)}
      >
        <p>The account and its sessions are deleted. This cannot be undone.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={pending === 'revoke-all'}
        title={`Revoke every session of ${user.email}?`}
        confirmLabel="Revoke all sessions"
        danger
        onConfirm={revokeAll}
        onCancel={() => setPending(null)}
      >
        <p>They are signed out everywhere and must log in again.</p>
      </ConfirmDialog>
    </>
  );
}

/** Name, email and roles; only the fields changed are sent. */
function DetailsForm(props: { api: AdminApi; user: AdminUser; onSaved: (user: AdminUser, message: string) => void; onError: (message: string) => void }) {
  const { user } = props;
  const [name, setName] = useState(user.name);
  const [email, setEmail] = useState(user.email);
  const [roles, setRoles] = useState(user.roles.join(', '));
  const [busy, setBusy] = useState(false);

  const save = async (event: Event) => {
    event.preventDefault();
    if (busy) return;
    const wantedRoles = [...new Set(roles.split(',').map((role) => role.trim()).filter(Boolean))];
    const changes: { name?: string; email?: string; roles?: string[] } = {};
    if (name.trim() !== user.name) changes.name = name.trim();
    if (email.trim() !== user.email) changes.email = email.trim();
    if (wantedRoles.join(',') !== user.roles.join(',')) changes.roles = wantedRoles;
    if (Object.keys(changes).length === 0) return props.onSaved(user, 'Nothing changed.');
    setBusy(true);
    props.onError('');
    try {
      const updated = await props.api.updateUser(user.id, changes);
      props.onSaved(updated, 'Saved.');
    } catch (failure) {
      props.onError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="details-heading">
      <h2 id="details-heading">Details and roles</h2>
      <form class="stack narrow" onSubmit={save}>
        <label for="user-name">Name</label>
        <input id="user-name" type="text" value={name} onInput={(event) => setName(event.currentTarget.value)} />
        <label for="user-email">Email</label>
        <input id="user-email" type="email" required value={email} onInput={(event) => setEmail(event.currentTarget.value)} />
        <label for="user-roles">Roles</label>
        <input id="user-roles" type="text" aria-describedby="user-roles-hint" value={roles} onInput={(event) => setRoles(event.currentTarget.value)} />
        <p id="user-roles-hint" class="hint">
          Separated by commas, from the roles Gatehouse is configured with (ROLES). Removing a role or changing the email revokes the user's sessions.
        </p>
        <button type="submit" class="primary">
          Save changes
        </button>
      </form>
    </section>
  );
}
