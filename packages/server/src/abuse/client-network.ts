import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key a client is counted under. IPv4 addresses count one by one; an IPv6 client counts
 * per network of `ipv6PrefixLength` bits (a /64 is what one subscriber gets), so rotating the
 * interface id inside one's own network does not buy a fresh budget.
 */
export function clientNetwork(address: string, ipv6PrefixLength: number): string {
  const withoutZone = address.split('%')[0] ?? address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(withoutZone);
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1];
  if (isIPv4(withoutZone)) return withoutZone;
  if (!isIPv6(withoutZone)) return withoutZone; // not an address (a test transport); count it as given
  const groups = ipv6Groups(withoutZone);
  const network: number[] = groups.map((group, index) => {
    const bitsKept = Math.max(0, Math.min(16, ipv6PrefixLength - index * 16));
    return bitsKept === 0 ? 0 : group & ((0xffff << (16 - bitsKept)) & 0xffff);
  });
  return `${network.map((group) => group.toString(16)).join(':')}/${ipv6PrefixLength}`;
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and a dotted IPv4 tail converted. */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].map((group) => Number.parseInt(group, 16));
}
