import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import {
  addressClassFromEnv, defaultAddressClass, isPrivateAddress, isPublicAddress, privateAddressesMapper,
  publicAddressesMapper, withPublicRanges
} from '../../src/net/address-class.js'
import { addressClassOption, dhtOption } from '../../src/cli/dht-option.js'

const cls = (a: string): string => defaultAddressClass(multiaddr(a))

describe('defaultAddressClass', () => {
  it('loopback: 127.0.0.0/8, ::1, localhost', () => {
    for (const a of ['/ip4/127.0.0.1/tcp/1', '/ip4/127.200.3.4/tcp/1', '/ip6/::1/tcp/1', '/dns/localhost/tcp/1', '/dns4/a.localhost/tcp/1']) expect(cls(a), a).toBe('loopback')
  })

  it('private: RFC 1918, CGNAT, link-local, RFC 4193, unspecified, documentation, mDNS names, no host', () => {
    for (const a of [
      '/ip4/10.0.0.1/tcp/1', '/ip4/10.200.0.7/tcp/1', '/ip4/172.16.0.1/tcp/1', '/ip4/172.31.255.254/tcp/1', '/ip4/192.168.1.20/tcp/1',
      '/ip4/100.64.0.1/tcp/1', '/ip4/100.127.255.1/tcp/1', '/ip4/169.254.10.1/tcp/1', '/ip6/fe80::1/tcp/1', '/ip6/fd00::1/tcp/1',
      '/ip6/fc12:3456::1/tcp/1', '/ip4/0.0.0.0/tcp/1', '/ip6/::/tcp/1', '/ip4/192.0.2.1/tcp/1', '/ip4/203.0.113.7/tcp/1',
      '/dns4/printer.local/tcp/1', '/memory/x', '/p2p-circuit'
    ]) expect(cls(a), a).toBe('private')
  })

  it('public: other IPv4 and global IPv6 addresses, DNS names', () => {
    for (const a of [
      '/ip4/1.1.1.1/tcp/1', '/ip4/8.8.8.8/udp/53', '/ip4/172.32.0.1/tcp/1', '/ip4/100.128.0.1/tcp/1', '/ip4/11.0.0.1/tcp/1',
      '/ip6/2001:4860:4860::8888/tcp/1', '/ip6/2a00:1450:4001::1/tcp/1', '/dns4/example.com/tcp/443', '/dnsaddr/bootstrap.example.org'
    ]) expect(cls(a), a).toBe('public')
  })

  it('a relay address is classified by the relay\'s own address', () => {
    const relay = '/p2p/12D3KooWGTNdBiyqyYHExfPCbJ9BmMR1u6VqMTxsDdSwATSgpPHs/p2p-circuit'
    expect(cls(`/ip4/1.2.3.4/tcp/4001${relay}`)).toBe('public')
    expect(cls(`/ip4/192.168.1.2/tcp/4001${relay}`)).toBe('private')
  })

  it('isPublicAddress / isPrivateAddress: private takes loopback in (what a LAN DHT keeps)', () => {
    expect(isPublicAddress(multiaddr('/ip4/1.2.3.4/tcp/1'))).toBe(true)
    expect(isPrivateAddress(multiaddr('/ip4/1.2.3.4/tcp/1'))).toBe(false)
    expect(isPrivateAddress(multiaddr('/ip4/127.0.0.1/tcp/1'))).toBe(true)
    expect(isPrivateAddress(multiaddr('/ip4/192.168.0.1/tcp/1'))).toBe(true)
    expect(isPublicAddress(multiaddr('/ip4/127.0.0.1/tcp/1'), () => 'public')).toBe(true)
  })
})

describe('withPublicRanges', () => {
  it('calls the ranges public and asks the base about the rest', () => {
    const c = withPublicRanges(['10.200.0.0/16', '127.0.0.1/32', 'fd00:200::/32'])
    expect(c(multiaddr('/ip4/10.200.3.4/tcp/1'))).toBe('public')
    expect(c(multiaddr('/ip4/10.201.0.1/tcp/1'))).toBe('private')
    expect(c(multiaddr('/ip4/127.0.0.1/tcp/1'))).toBe('public')
    expect(c(multiaddr('/ip4/127.0.0.2/tcp/1'))).toBe('loopback')
    expect(c(multiaddr('/ip6/fd00:200::5/tcp/1'))).toBe('public')
    expect(c(multiaddr('/ip6/fd00:201::5/tcp/1'))).toBe('private')
    expect(c(multiaddr('/ip4/8.8.8.8/tcp/1'))).toBe('public')
    expect(withPublicRanges(['127.0.0.0/8'], () => 'private')(multiaddr('/ip4/8.8.8.8/tcp/1'))).toBe('private')
  })

  it('refuses what is not a CIDR', () => {
    for (const bad of ['10.200.0.0', '10.200.0.0/33', '10.200.0/16', 'fd00::/129', 'x/8', '10.0.0.0/8/1', '10.0.0.0/-1', '']) {
      expect(() => withPublicRanges([bad]), bad).toThrow(RangeError)
    }
  })

  it('BITSWARM_PUBLIC_RANGES: unset or empty is the default; comma- or space-separated ranges; a bad one is a usage error in the CLI', () => {
    expect(addressClassFromEnv({})).toBeUndefined()
    expect(addressClassFromEnv({ BITSWARM_PUBLIC_RANGES: ' ' })).toBeUndefined()
    const c = addressClassFromEnv({ BITSWARM_PUBLIC_RANGES: '10.200.0.0/24, 10.9.0.0/16 127.0.0.0/8' })
    expect(c?.(multiaddr('/ip4/10.200.0.3/tcp/1'))).toBe('public')
    expect(c?.(multiaddr('/ip4/10.9.1.1/tcp/1'))).toBe('public')
    expect(c?.(multiaddr('/ip4/127.0.0.1/tcp/1'))).toBe('public')
    expect(c?.(multiaddr('/ip4/192.168.1.1/tcp/1'))).toBe('private')
    expect(() => addressClassOption({ BITSWARM_PUBLIC_RANGES: '10.200.0.0' })).toThrow(/BITSWARM_PUBLIC_RANGES: not an address range/)
    expect(addressClassOption({})).toBeUndefined()
  })
})

describe('peerInfo mappers', () => {
  it('the WAN one keeps public addresses, the LAN one the others', () => {
    const id = peerIdFromString('12D3KooWGTNdBiyqyYHExfPCbJ9BmMR1u6VqMTxsDdSwATSgpPHs')
    const addrs = ['/ip4/1.2.3.4/tcp/1', '/ip4/192.168.1.2/tcp/1', '/ip4/127.0.0.1/tcp/1', '/ip4/10.200.0.2/tcp/1'].map(a => multiaddr(a))
    const text = (p: { multiaddrs: Array<{ toString: () => string }> }): string[] => p.multiaddrs.map(String)
    expect(text(publicAddressesMapper()({ id, multiaddrs: addrs }))).toEqual(['/ip4/1.2.3.4/tcp/1'])
    expect(text(privateAddressesMapper()({ id, multiaddrs: addrs }))).toEqual(['/ip4/192.168.1.2/tcp/1', '/ip4/127.0.0.1/tcp/1', '/ip4/10.200.0.2/tcp/1'])
    const internet = withPublicRanges(['10.200.0.0/16'])
    expect(text(publicAddressesMapper(internet)({ id, multiaddrs: addrs }))).toEqual(['/ip4/1.2.3.4/tcp/1', '/ip4/10.200.0.2/tcp/1'])
    expect(text(privateAddressesMapper(internet)({ id, multiaddrs: addrs }))).toEqual(['/ip4/192.168.1.2/tcp/1', '/ip4/127.0.0.1/tcp/1'])
  })
})

describe('--dht / --no-dht', () => {
  it('auto by default; lan, wan, off; --no-dht is off', () => {
    expect(dhtOption(undefined, undefined)).toBe('auto')
    for (const m of ['auto', 'lan', 'wan', 'off']) expect(dhtOption(m, undefined)).toBe(m)
    expect(dhtOption(undefined, true)).toBe('off')
    expect(dhtOption('off', true)).toBe('off')
    expect(() => dhtOption('lan', true)).toThrow(/contradict/)
    expect(() => dhtOption('amino', undefined)).toThrow(/--dht must be one of auto, lan, wan, off/)
  })
})
