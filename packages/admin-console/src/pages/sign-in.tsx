import { useEffect, useRef, useState } from 'preact/hooks';
import { isGatehouseError } from '@gatehouse/client';
import { NotAnAdmin, signIn, type SecondFactorStep, type SignedIn } from '../api.ts';
import { ErrorNotice } from '../components.tsx';
import { messageOf } from '../format.ts';

/**
 * Two steps for an account with two-factor authentication: the password, then the code of the
 * authenticator app (or a recovery code). The MFA ticket between them stays in memory, in the step.
 */
export function SignInPage(props: { notice: string; onSignedIn: (session: SignedIn) => void; onSessionEnd: (message: string) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [secondFactor, setSecondFactor] = useState<SecondFactorStep | null>(null);
  const emailInput = useRef<HTMLInputElement>(null);
  const passwordInput = useRef<HTMLInputElement>(null);
  // Which field takes the focus when the password step shows (again).
  const [passwordStepFocus, setPasswordStepFocus] = useState<'email' | 'password'>('email');
  useEffect(() => {
    if (secondFactor) return;
    (passwordStepFocus === 'password' ? passwordInput : emailInput).current?.focus();
  }, [secondFactor, passwordStepFocus]);

  /** From the code step back to the password (the email kept), with an alert when there is a message. */
  const backToPassword = (message: string, focus: 'email' | 'password') => {
    setSecondFactor(null);
    setError(message);
    setPasswordStepFocus(focus);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const result = await signIn(email, password, props.onSessionEnd);
      setPassword('');
      if ('secondFactor' in result) setSecondFactor(result.secondFactor);
      else props.onSignedIn(result.signedIn);
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
      {secondFactor ? (
        <SecondFactorForm
          step={secondFactor}
          onSignedIn={props.onSignedIn}
          onTicketEnded={(message) => backToPassword(`The verification step ended (${message}). Sign in again.`, 'password')}
          onNotAnAdmin={(message) => backToPassword(message, 'email')}
          onStartOver={() => backToPassword('', 'email')}
        />
      ) : (
        <>
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
              ref={passwordInput}
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
        </>
      )}
    </main>
  );
}

/** The second step: POST /login/mfa with the ticket the password step won and the code typed here. */
function SecondFactorForm(props: {
  step: SecondFactorStep;
  onSignedIn: (session: SignedIn) => void;
  onTicketEnded: (message: string) => void;
  onNotAnAdmin: (message: string) => void;
  onStartOver: () => void;
}) {
  const [code, setCode] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  // Recovery codes have letters: the numeric keypad phones show for inputmode=numeric cannot type them.
  const [recoveryCode, setRecoveryCode] = useState(false);
  const codeInput = useRef<HTMLInputElement>(null);
  useEffect(() => codeInput.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const session = await props.step.complete(code.trim());
      props.onSignedIn(session);
      return;
    } catch (failure) {
      // The ticket is unknown, expired, spent or out of tries: only a new password step gets another.
      if (isGatehouseError(failure, 'unauthorized')) return props.onTicketEnded(failure.message);
      if (failure instanceof NotAnAdmin) return props.onNotAnAdmin(failure.message);
      // The server's own words (a wrong code: "verification failed - incorrect code"); the same ticket allows a few tries.
      if (isGatehouseError(failure, 'rate_limited')) setError(`Too many attempts: try again in ${failure.retryAfterSeconds ?? 60} seconds (${failure.message}).`);
      else setError(messageOf(failure));
      setCode('');
      codeInput.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h2 id="second-factor-heading">Two-step verification</h2>
      <ErrorNotice message={error} />
      <form onSubmit={submit} class="stack" aria-labelledby="second-factor-heading">
        <label for="sign-in-code">Authentication code</label>
        <p id="sign-in-code-hint" class="hint">
          {recoveryCode
            ? 'One of the recovery codes you saved when you turned on two-step verification, like k7m2p-x9qrt.'
            : 'The 6-digit code your authenticator app shows now. Lost the app? Use a recovery code instead.'}
        </p>
        <input
          id="sign-in-code"
          ref={codeInput}
          type="text"
          name="code"
          autoComplete="one-time-code"
          inputMode={recoveryCode ? 'text' : 'numeric'}
          autoCapitalize="none"
          autocorrect="off"
          spellcheck={false}
          maxLength={64}
          required
          aria-describedby="sign-in-code-hint"
          value={code}
          onInput={(event) => setCode(event.currentTarget.value)}
        />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Verifying…' : 'Verify'}
        </button>
      </form>
      <div class="actions">
        <button
          type="button"
          onClick={() => {
            setRecoveryCode(!recoveryCode);
            codeInput.current?.focus();
          }}
        >
          {recoveryCode ? 'Use the app’s code' : 'Use a recovery code'}
        </button>
        <button type="button" onClick={props.onStartOver}>
          Start over
        </button>
      </div>
    </>
  );
}
