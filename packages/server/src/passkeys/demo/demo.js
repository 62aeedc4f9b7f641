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

async function run(label, action) {
  try {
    show(`${label}…`);
    const answer = await action();
    show(`${label}: done`, answer);
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

$('password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run('Password sign-in', async () => {
    const answer = await call('POST', '/login', { email: $('email').value, password: $('password').value });
    accessToken = answer.token;
    await refreshList();
    return answer;
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
