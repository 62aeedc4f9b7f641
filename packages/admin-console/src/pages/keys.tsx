import { useEffect, useState } from 'preact/hooks';
import type { AdminApi, SigningKey } from '../api.ts';
import type { Announce } from '../app.tsx';
import { ConfirmDialog, ErrorNotice, PageHeading, Time } from '../components.tsx';
import { formatTime, messageOf } from '../format.ts';

/** The signing keys (pending, active, retired) and a rotation, as `gatehouse keys rotate` does it. */
export function KeysPage(props: { api: AdminApi; announce: Announce }) {
  const [keys, setKeys] = useState<SigningKey[] | null>(null);
  const [error, setError] = useState('');
  const [now, setNow] = useState(false);
  const [confirming, setConfirming] = useState(false);

  const load = () => props.api.listKeys().then(setKeys, (failure) => setError(messageOf(failure)));
  useEffect(() => {
    void load();
  }, []);

  const rotate = async () => {
    setConfirming(false);
    setError('');
    try {
      const rotated = await props.api.rotateKey(now);
      props.announce(`New key ${rotated.kid} signs from ${formatTime(rotated.activates_at)}.`);
      await load();
    } catch (failure) {
      setError(messageOf(failure));
    }
  };

  return (
    <>
      <PageHeading>Signing keys</PageHeading>
      <ErrorNotice message={error} />
      {keys === null ? (
        <p>Loading…</p>
      ) : (
        <table>
          <caption class="visually-hidden">Signing keys</caption>
          <thead>
            <tr>
              <th scope="col">Key id</th>
              <th scope="col">Algorithm</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
              <th scope="col">Signs from</th>
              <th scope="col">Retired</th>
              <th scope="col">Published until</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((key) => (
              <tr key={key.kid}>
                <td>
                  <code>{key.kid}</code>
                </td>
                <td>{key.algorithm}</td>
                <td>
                  <span class={key.state === 'active' ? 'badge' : key.state === 'pending' ? 'badge badge-pending' : 'badge badge-off'}>{key.state}</span>
                </td>
                <td>
                  <Time value={key.created_at} />
                </td>
                <td>
                  <Time value={key.activates_at} />
                </td>
                <td>
                  <Time value={key.retired_at} />
                </td>
                <td>
                  <Time value={key.expires_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <section aria-labelledby="rotate-heading">
        <h2 id="rotate-heading">Rotate</h2>
        <p class="muted">
          A new key is published at once and signs after the pending period, so verifiers have its public key before they meet a token signed with
          it. The current key is retired then, and published until its last tokens expire.
        </p>
        <label class="inline">
          <input type="checkbox" checked={now} onChange={(event) => setNow(event.currentTarget.checked)} /> Sign with the new key at once (after a
          key leak)
        </label>
        <div class="actions">
          <button type="button" class="primary" onClick={() => setConfirming(true)}>
            Rotate signing key
          </button>
        </div>
      </section>
      <ConfirmDialog open={confirming} title="Rotate the signing key?" confirmLabel="Rotate" onConfirm={rotate} onCancel={() => setConfirming(false)}>
        <p>{now ? 'The new key signs every token from now on.' : 'The new key signs once its pending period is over.'}</p>
      </ConfirmDialog>
    </>
  );
}
