import { useEffect, useRef, useState } from 'preact/hooks';
import { isGatehouseError } from '@gatehouse/client';
import { signIn, type SignedIn } from '../api.ts';
import { ErrorNotice } from '../components.tsx';
import { messageOf } from '../format.ts';

export function SignInPage(props: { notice: string; onSignedIn: (session: SignedIn) => void; onSessionEnd: (message: string) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const emailInput = useRef<HTMLInputElement>(null);
  useEffect(() => emailInput.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const session = await signIn(email, password, props.onSessionEnd);
      setPassword('');
      props.onSignedIn(session);
    } catch (failure) {
      // Gatehouse gives one answer for a wrong email, a wrong password and a disabled account.
      if (isGatehouseError(failure, 'forbidden')) setError('Wrong email or password.');
      else if (isGatehouseError(failure, 'rate_limited')) setError(`Too many attempts: try again in ${failure.retryAfterSeconds ?? 60} seconds.`);
      else setError(messageOf(failure));
      emailInput.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="sign-in">
      <h1>Gatehouse admin</h1>
      <p class="muted">Sign in with an account that has the admin role.</p>
      {props.notice ? <p class="notice">{props.notice}</p> : null}
      <ErrorNotice message={error} />
      <form onSubmit={submit} class="stack">
        <label for="sign-in-email">Email</label>
        <input
          id="sign-in-email"
          ref={emailInput}
          type="email"
          name="email"
          autoComplete="username"
          required
          value={email}
          onInput={(event) => setEmail(event.currentTarget.value)}
        />
        <label for="sign-in-password">Password</label>
        <input
          id="sign-in-password"
          type="password"
          name="password"
          autoComplete="current-password"
          required
          value={password}
          onInput={(event) => setPassword(event.currentTarget.value)}
        />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
