import { useState } from 'preact/hooks';
import type { SignedIn } from './api.ts';
import { Link } from './components.tsx';
import { AuditPage } from './pages/audit.tsx';
import { ClientsPage } from './pages/clients.tsx';
import { KeysPage } from './pages/keys.tsx';
import { SignInPage } from './pages/sign-in.tsx';
import { UserPage } from './pages/user.tsx';
import { UsersPage } from './pages/users.tsx';
import { navigate, useLocation } from './router.ts';

const SECTIONS = [
  { to: '/users', label: 'Users' },
  { to: '/audit', label: 'Audit log' },
  { to: '/keys', label: 'Signing keys' },
  { to: '/clients', label: 'Clients' },
];

/** What a page tells the admin after an action, shown on the page it belongs to (a delete moves to the list). */
export interface Announcement {
  text: string;
  path: string;
}

export type Announce = (text: string, path?: string) => void;

export function App() {
  // The session lives in this component only: the tokens are in @gatehouse/client's memory storage,
  // never in localStorage or a cookie, so a reload or a closed tab signs out.
  const [session, setSession] = useState<SignedIn | null>(null);
  const [endedBecause, setEndedBecause] = useState('');
  const [announcement, setAnnouncement] = useState<Announcement | null>(null);
  const location = useLocation();

  if (!session) {
    return (
      <SignInPage
        notice={endedBecause}
        onSignedIn={(signedIn) => {
          setEndedBecause('');
          setSession(signedIn);
          if (location.path === '/') navigate('/users', { replace: true });
        }}
        onSessionEnd={(message) => {
          setSession(null);
          setEndedBecause(`Your session ended (${message}). Sign in again.`);
        }}
      />
    );
  }

  const announce: Announce = (text, path = location.path) => setAnnouncement({ text, path });
  const signOut = async () => {
    await session.api.client.logout().catch(() => undefined);
    setSession(null);
    setEndedBecause('');
    setAnnouncement(null);
  };
  const section = SECTIONS.find((candidate) => location.path === candidate.to || location.path.startsWith(`${candidate.to}/`));
  const userMatch = /^\/users\/(\d+)$/.exec(location.path);
  const queryKey = location.query.toString();

  let page;
  if (userMatch) page = <UserPage key={userMatch[1]} api={session.api} userId={Number(userMatch[1])} selfId={session.user.id} announce={announce} />;
  else if (location.path === '/users' || location.path === '/') page = <UsersPage key={queryKey} api={session.api} query={location.query} />;
  else if (location.path === '/audit') page = <AuditPage key={queryKey} api={session.api} query={location.query} />;
  else if (location.path === '/keys') page = <KeysPage api={session.api} announce={announce} />;
  else if (location.path === '/clients') page = <ClientsPage api={session.api} announce={announce} />;
  else page = <NotFound />;

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Gatehouse admin</span>
        <nav aria-label="Sections">
          <ul>
            {SECTIONS.map((candidate) => (
              <li key={candidate.to}>
                <Link to={candidate.to} current={candidate === section}>
                  {candidate.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="account">
          <span>{session.user.email}</span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <p role="status" class={announcement?.path === location.path ? 'notice notice-ok' : 'visually-hidden'}>
          {announcement?.path === location.path ? announcement.text : ''}
        </p>
        {page}
      </main>
    </>
  );
}

function NotFound() {
  return (
    <>
      <h1>Page not found</h1>
      <p>
        There is no such page in the console. <Link to="/users">Go to the users</Link>.
      </p>
    </>
  );
}
