// Browser code of /passkeys/demo, bundled with @simplewebauthn/browser by esbuild (passkeys/demo-page.ts).
// Plain JavaScript: the server's tsconfig has no DOM types; esbuild needs none.
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from '@simplewebauthn/browser';

let accessToken = null;
const $ = (id) => document.getElementById(id);

function show(label, body) {
  $('status').textContent = label;
  $('output').textContent = body === undefined ? '' : JSON.stringify(body, null, 2);
}

async function call(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) {
    const error = new Error(answer.message || `HTTP ${response.status}`);
    error.answer = answer;
    throw error;
  }
  return answer;
}

/** An action's answer that is not the end of it yet: shown as `label: message`, not `label: done`. */
class Unfinished {
  constructor(message, answer) {
    this.message = message;
    this.answer = answer;
  }
}

async function run(label, action) {
  try {
    show(`${label}…`);
    const answer = await action();
    if (answer instanceof Unfinished) show(`${label}: ${answer.message}`, answer.answer);
    else show(`${label}: done`, answer);
  } catch (error) {
    show(`${label}: failed - ${error.message}`, error.answer);
  }
}

async function refreshList() {
  const answer = await call('GET', '/me/passkeys');
  const list = $('passkey-list');
  list.replaceChildren();
  for (const passkey of answer.data) {
    const item = document.createElement('li');
    item.dataset.passkeyId = String(passkey.id);
    // textContent: a passkey's name is whatever its owner typed.
    item.append(document.createTextNode(`${passkey.name} (${passkey.device_type ?? 'unknown'}) `));
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = `Delete ${passkey.name}`;
    remove.addEventListener('click', () =>
      run('Delete', async () => {
        const result = await call('DELETE', `/me/passkeys/${passkey.id}`);
        await refreshList();
        return result;
      }),
    );
    item.append(remove);
    list.append(item);
  }
  return answer;
}

// With TOTP on, POST /login answers the right password with an MFA ticket (200 `mfa_required`), not tokens;
// POST /login/mfa {mfa_ticket, code} finishes it. The ticket stays here (memory only) until a code is given,
// so a second click with the code finishes the same sign-in; a wrong code may be tried again on it.
let pendingMfa = null;
const CODE_NEEDED = 'two-factor authentication is on - type a code from your authenticator app (or a recovery code), then sign in again';

async function signedIn(answer) {
  if (!answer.token) throw new Error('the answer carries no access token');
  accessToken = answer.token;
  await refreshList();
  return answer;
}

$('password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run('Password sign-in', async () => {
    const email = $('email').value;
    const code = $('login-code').value.trim();
    $('login-code').value = '';
    // A ticket is for the address it was won with: another address starts over with the password.
    if (pendingMfa && pendingMfa.email !== email) pendingMfa = null;
    if (!pendingMfa) {
      const answer = await call('POST', '/login', { email, password: $('password').value });
      if (!answer.data || answer.data.mfa_required !== true) return signedIn(answer);
      pendingMfa = { email, ticket: answer.data.mfa_ticket, answer };
    }
    if (!code) {
      $('login-code').focus();
      return new Unfinished(CODE_NEEDED, pendingMfa.answer);
    }
    let answer;
    try {
      answer = await call('POST', '/login/mfa', { mfa_ticket: pendingMfa.ticket, code });
    } catch (error) {
      // Expired, worn out (too many wrong codes) or void: start over. A wrong code keeps the ticket for another try.
      if (error.answer && error.answer.code === 401) {
        pendingMfa = null;
        error.message += ' - sign in again with your password';
      } else {
        if (error.answer && error.answer.code === 403) error.message += ' - type the code your app shows now (or a recovery code), then sign in again';
        $('login-code').focus();
      }
      throw error;
    }
    pendingMfa = null;
    return signedIn(answer);
  });
});

$('register-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run('Add a passkey', async () => {
    // Adding a passkey needs a recent sign-in (REAUTH_MAX_AGE) or the password (and a code with TOTP on).
    const password = $('reauth-password').value;
    const code = $('reauth-code').value.trim();
    const proof = password ? (code ? { password, code } : { password }) : undefined;
    $('reauth-password').value = '';
    $('reauth-code').value = '';
    const options = await call('POST', '/me/passkeys/register/options', proof);
    const response = await startRegistration({ optionsJSON: options.data });
    const name = $('passkey-name').value.trim();
    const answer = await call('POST', '/me/passkeys/register/verify', name ? { response, name } : { response });
    await refreshList();
    return answer;
  });
});

$('refresh-list').addEventListener('click', () => run('List', refreshList));

$('passkey-login').addEventListener('click', () =>
  run('Passkey sign-in', async () => {
    const options = await call('POST', '/login/passkey/options');
    const response = await startAuthentication({ optionsJSON: options.data.options });
    const answer = await call('POST', '/login/passkey/verify', { challenge_id: options.data.challenge_id, response });
    accessToken = answer.token;
    return answer;
  }),
);

if (!browserSupportsWebAuthn()) show('This browser does not support WebAuthn');
