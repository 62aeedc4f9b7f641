import { useEffect, useState } from 'preact/hooks';
import type { AdminApi, ServiceClient } from '../api.ts';
import type { Announce } from '../app.tsx';
import { ErrorNotice, PageHeading, Time } from '../components.tsx';
import { messageOf } from '../format.ts';

/** The applications and services registered with `gatehouse clients create`, each one disabled or enabled here. */
export function ClientsPage(props: { api: AdminApi; announce: Announce }) {
  const [clients, setClients] = useState<ServiceClient[] | null>(null);
  const [error, setError] = useState('');

  useEffect(() => {
    props.api.listClients().then(setClients, (failure) => setError(messageOf(failure)));
  }, []);

  const toggle = async (client: ServiceClient) => {
    setError('');
    try {
      const updated = await props.api.setClientDisabled(client.id, !client.disabled);
      setClients((current) => current?.map((candidate) => (candidate.id === updated.id ? updated : candidate)) ?? null);
      props.announce(updated.disabled ? `Client ${updated.id} is disabled; its sessions are revoked.` : `Client ${updated.id} is enabled again.`);
    } catch (failure) {
      setError(messageOf(failure));
    }
  };

  return (
    <>
      <PageHeading>Clients</PageHeading>
      <ErrorNotice message={error} />
      {clients === null ? (
        <p>Loading…</p>
      ) : (
        <table>
          <caption class="visually-hidden">Clients</caption>
          <thead>
            <tr>
              <th scope="col">Client id</th>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Audiences</th>
              <th scope="col">Scopes</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {clients.map((client) => (
              <tr key={client.id}>
                <td>
                  <code>{client.id}</code>
                </td>
                <td>{client.name}</td>
                <td>{client.type}</td>
                <td>{client.audiences.join(', ') || '—'}</td>
                <td>{client.scopes.join(' ') || '—'}</td>
                <td>{client.disabled ? <span class="badge badge-off">disabled</span> : <span class="badge">enabled</span>}</td>
                <td>
                  <Time value={client.created_at} />
                </td>
                <td>
                  <button type="button" class={client.disabled ? 'primary' : 'danger'} onClick={() => toggle(client)}>
                    {client.disabled ? 'Enable' : 'Disable'}
                    <span class="visually-hidden"> {client.id}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
