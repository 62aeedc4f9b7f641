// A router of a few lines: the console's pages are paths under /admin (Gatehouse answers index.html
// for any of them), changed with the History API so links, reloads and Back behave as on any site.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/admin';

export interface Location {
  /** The path below /admin, starting with "/" ("/" for /admin itself). */
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  const below = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return { path: below === '' ? '/' : below, query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
addEventListener('popstate', () => listeners.forEach((listener) => listener()));

/** Goes to a console path ("/users?email=a"); replace keeps Back from stepping through every search. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = `${BASE}${to}`;
  if (options.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((listener) => listener());
}

export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const listener = () => setLocation(current());
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
  return location;
}

/** A plain click on a console link navigates in place; a modified click (new tab) is the browser's. */
export function followLink(event: MouseEvent, to: string): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(to);
}
