import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isForbiddenAddress } from '../../../src/core/broker/addresses.js';

describe('isForbiddenAddress', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', '0/8'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback /8'],
    ['10.1.2.3', 'private 10/8'],
    ['172.16.0.1', 'private 172.16/12'],
    ['172.31.255.255', 'private 172.16/12 top'],
    ['192.168.1.1', 'private 192.168/16'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.255', 'CGNAT top'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'benchmark'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['::1', 'v6 loopback'],
    ['::', 'v6 unspecified'],
    ['[::1]', 'bracketed'],
    ['fc00::1', 'ULA'],
    ['fd12:3456::1', 'ULA fd'],
    ['fd00:ec2::254', 'AWS v6 metadata'],
    ['fe80::1', 'link-local v6'],
    ['fe80::1%eth0', 'scoped'],
    ['ff02::1', 'multicast v6'],
    ['::ffff:127.0.0.1', 'mapped loopback'],
    ['::ffff:7f00:1', 'mapped loopback hex'],
    ['::ffff:a9fe:a9fe', 'mapped metadata'],
    ['::ffff:10.0.0.1', 'mapped private'],
    ['::127.0.0.1', 'compatible'],
    ['::7f00:1', 'compatible hex'],
    ['64:ff9b::7f00:1', 'NAT64 loopback'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 metadata'],
    ['64:ff9b:1::1', 'NAT64 local-use'],
    ['2002:7f00:1::1', '6to4 loopback'],
    ['2002:c0a8:101::1', '6to4 private'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
    ['2001:db8::1', 'documentation v6'],
    ['127.1', 'short form'],
    ['0x7f.0.0.1', 'hex form'],
    ['0177.0.0.1', 'octal form'],
    ['2130706433', 'integer form'],
    ['localhost', 'name'],
    ['', 'empty'],
    ['1.2.3.4.5', 'garbage'],
  ])('%s is forbidden (%s)', (address) => {
    expect(isForbiddenAddress(address)).toBe(true);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '104.18.7.192',
    '2606:4700::6810:1',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:808:808::1',
  ])('%s is allowed', (address) => {
    expect(isForbiddenAddress(address)).toBe(false);
  });

  const octet = fc.integer({ min: 0, max: 255 });
  const privateV4 = fc.oneof(
    fc.tuple(fc.constant(10), octet, octet, octet),
    fc.tuple(fc.constant(172), fc.integer({ min: 16, max: 31 }), octet, octet),
    fc.tuple(fc.constant(192), fc.constant(168), octet, octet),
    fc.tuple(fc.constant(127), octet, octet, octet),
    fc.tuple(fc.constant(169), fc.constant(254), octet, octet),
    fc.tuple(fc.constant(100), fc.integer({ min: 64, max: 127 }), octet, octet),
    fc.tuple(fc.constant(0), octet, octet, octet),
    fc.tuple(fc.integer({ min: 224, max: 255 }), octet, octet, octet),
  );
  const hex = (a: number, b: number): string => ((a << 8) | b).toString(16);

  it('property: private/local v4 and every IPv6 wrapping of it are forbidden', () => {
    fc.assert(
      fc.property(privateV4, ([a, b, c, d]) => {
        const dotted = `${a}.${b}.${c}.${d}`;
        const forms = [
          dotted,
          `::ffff:${dotted}`,
          `::ffff:${hex(a, b)}:${hex(c, d)}`,
          `::${hex(a, b)}:${hex(c, d)}`,
          `64:ff9b::${hex(a, b)}:${hex(c, d)}`,
          `2002:${hex(a, b)}:${hex(c, d)}::1`,
          `::ffff:0:${dotted}`,
        ];
        for (const form of forms) expect(isForbiddenAddress(form), form).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('property: arbitrary strings never throw and unparseable ones are forbidden', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const r = isForbiddenAddress(s);
        expect(typeof r).toBe('boolean');
        if (!/^[0-9a-fA-F:.[\]%a-z]+$/.test(s)) expect(r).toBe(true);
      }),
    );
  });
});
