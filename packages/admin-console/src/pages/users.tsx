import { useEffect, useRef, useState } from 'preact/hooks';
import { queryOf, type AdminApi, type AdminUser, type UserFilters } from '../api.ts';
import { ErrorNotice, Link, PageHeading, Time } from '../components.tsx';
import { messageOf } from '../format.ts';
import { navigate } from '../router.ts';

function filtersOf(query: URLSearchParams): UserFilters {
  const disabled = query.get('disabled');
  return {
    email: query.get('email') ?? '',
    role: query.get('role') ?? '',
    ...(disabled === 'true' || disabled === 'false' ? { disabled } : {}),
  };
}

// Set by a search, read by the page it mounts: the focus goes to the results, not back to the top.
let focusResultsOnMount = false;

/** The user list: filters live in the address (shareable, Back works), pages follow next_cursor. */
export function UsersPage(props: { api: AdminApi; query: URLSearchParams }) {
  const filters = filtersOf(props.query);
  const [form, setForm] = useState(filters);
  // The cursors of the pages seen so far: the last one is this page's, so Previous pops one.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ users: AdminUser[]; next_cursor: string | null } | null>(null);
  const [error, setError] = useState('');
  const cursor = cursors[cursors.length - 1] ?? null;
  // Searching again with the same filters reloads: the address does not change, so this does.
  const [generation, setGeneration] = useState(0);
  const results = useRef<HTMLHeadingElement>(null);
  const [focusResults, setFocusResults] = useState(() => {
    const wanted = focusResultsOnMount;
    focusResultsOnMount = false;
    return wanted;
  });

  useEffect(() => {
    let current = true;
    setError('');
    props.api.listUsers(filters, cursor).then(
      (answer) => {
        if (!current) return;
        setPage(answer);
        // After a search or a page change (whose button may now be disabled), the focus goes to the results.
        if (focusResults) requestAnimationFrame(() => results.current?.focus());
      },
      (failure) => current && setError(messageOf(failure)),
    );
    return () => {
      current = false;
    };
  }, [cursor, generation]);

  const search = (event: Event) => {
    event.preventDefault();
    // A new search is a new address (the page remounts with its filters and the first page).
    const query = queryOf({ email: form.email?.trim(), role: form.role?.trim(), disabled: form.disabled });
    if (query === queryOf({ ...filters })) {
      setFocusResults(true);
      setCursors([null]);
      setGeneration(generation + 1);
      return;
    }
    focusResultsOnMount = true;
    navigate(`/users${query}`, { replace: true });
  };
  const count = page?.users.length ?? 0;

  return (
    <>
      <PageHeading focus={!focusResults}>Users</PageHeading>
      <form class="filters" role="search" aria-label="Search users" onSubmit={search}>
        <div class="field">
          <label for="filter-email">Email starts with</label>
          <input id="filter-email" type="search" value={form.email} onInput={(event) => setForm({ ...form, email: event.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="filter-role">Role</label>
          <input id="filter-role" type="text" value={form.role} onInput={(event) => setForm({ ...form, role: event.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="filter-disabled">Status</label>
          <select
            id="filter-disabled"
            value={form.disabled ?? ''}
            onChange={(event) => {
              const value = event.currentTarget.value;
              const { disabled: _, ...rest } = form;
              setForm(value === 'true' || value === 'false' ? { ...rest, disabled: value } : rest);
            }}
          >
            <option value="">Any</option>
            <option value="false">Enabled</option>
            <option value="true">Disabled</option>
          </select>
        </div>
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      <ErrorNotice message={error} />
      <h2 ref={results} tabIndex={-1}>
        Results
      </h2>
      <p class="muted" aria-live="polite">
        {page ? `Page ${cursors.length}: ${count} ${count === 1 ? 'user' : 'users'}${page.next_cursor ? ', more on the next page' : ''}.` : 'Loading…'}
      </p>
      {page && count > 0 ? (
        <table>
          <caption class="visually-hidden">Users, page {cursors.length}</caption>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Name</th>
              <th scope="col">Roles</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {page.users.map((user) => (
              <tr key={user.id}>
                <td>
                  <Link to={`/users/${user.id}`}>{user.email}</Link>
                </td>
                <td>{user.name ?? '—'}</td>
                <td>{user.roles?.join(', ') ?? '—'}</td>
                <td>{user.disabled === undefined ? '—' : user.disabled ? <span class="badge badge-off">disabled</span> : <span class="badge">enabled</span>}</td>
                <td>
                  <Time value={user.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <nav class="pager" aria-label="Pages of users">
        <button type="button" disabled={cursors.length === 1} onClick={() => {
            setFocusResults(true);
            setCursors(cursors.slice(0, -1));
          }}>
          Previous page
        </button>
        <button type="button" disabled={!page?.next_cursor} onClick={() => {
            if (!page?.next_cursor) return;
            setFocusResults(true);
            setCursors([...cursors, page.next_cursor]);
          }}>
          Next page
        </button>
      </nav>
    </>
  );
}
