import { describe, expect, it } from 'vitest';
import { clientNetwork } from './client-network.ts';

describe('clientNetwork', () => {
  it('counts IPv4 addresses one by one, IPv4-mapped IPv6 as IPv4', () => {
    expect(clientNetwork('203.0.113.7', 64)).toBe('203.0.113.7');
    expect(clientNetwork('::ffff:203.0.113.7', 64)).toBe('203.0.113.7');
    expect(clientNetwork('203.0.113.8', 64)).not.toBe(clientNetwork('203.0.113.7', 64));
  });

  it('counts IPv6 clients per /64: rotating the interface id keeps the same key', () => {
    const key = clientNetwork('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64);
    expect(key).toBe('2001:db8:1:2:0:0:0:0/64');
    expect(clientNetwork('2001:db8:1:2::1', 64)).toBe(key);
    expect(clientNetwork('2001:DB8:1:2:ffff:ffff:ffff:ffff', 64)).toBe(key);
    expect(clientNetwork('2001:db8:1:3::1', 64)).not.toBe(key);
  });

  it('honours other prefix lengths, including ones inside a group', () => {
    expect(clientNetwork('2001:db8:1:2ff::1', 56)).toBe('2001:db8:1:200:0:0:0:0/56');
    expect(clientNetwork('2001:db8:1:2ff::1', 48)).toBe('2001:db8:1:0:0:0:0:0/48');
    expect(clientNetwork('2001:db8::1', 128)).toBe('2001:db8:0:0:0:0:0:1/128');
  });

  it('expands :: anywhere, a dotted tail and a zone id', () => {
    expect(clientNetwork('::1', 64)).toBe('0:0:0:0:0:0:0:0/64');
    expect(clientNetwork('fe80::1%eth0', 64)).toBe('fe80:0:0:0:0:0:0:0/64');
    expect(clientNetwork('64:ff9b::192.0.2.33', 96)).toBe('64:ff9b:0:0:0:0:0:0/96');
    expect(clientNetwork('64:ff9b::192.0.2.33', 128)).toBe('64:ff9b:0:0:0:0:c000:221/128');
  });
});
