/**
 * Which of a peer's addresses are on the internet and which on a LAN, for the two Kademlia DHTs
 * (src/node.ts): the WAN DHT keeps and passes on the addresses a classifier calls `public`, the
 * LAN DHT the `private` and `loopback` ones, and the WAN DHT serves (server mode) once one of our
 * own addresses is public (src/net/dht-mode.ts).
 *
 * The default classifier is libp2p's own notion (the one kad-dht's removePublicAddressesMapper
 * uses, so a LAN DHT keeps exactly what it kept before): loopback (127.0.0.0/8, ::1,
 * `localhost`), and private: RFC 1918 (10/8, 172.16/12, 192.168/16), CGNAT (100.64/10),
 * link-local (169.254/16, fe80::/10), RFC 4193 unique-local (fc00::/7) and the other
 * special-purpose ranges (documentation, benchmarking, 0/8, 240/4 …). Everything else with an IP
 * or a DNS name is public.
 *
 * Another classifier can be injected (NodeInit/PeerOptions `addressClass`): `withPublicRanges`
 * makes one that calls some ranges public, so that tests can play "the internet" with private
 * addresses (127.0.0.0/8 in one process; 10.200.0.0/16 between network namespaces). The command
 * line takes such ranges only from the environment, for tests: `BITSWARM_PUBLIC_RANGES`
 * (see `addressClassFromEnv`).
 */
import { BlockList, isIP } from 'node:net'
import { isLoopback, isPrivate, tryGetNetConfig } from '@libp2p/utils'
import type { PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export type AddressClass = 'public' | 'private' | 'loopback'

/** Says where an address can be reached from: the internet, a LAN, or this host only. */
export type AddressClassifier = (ma: Multiaddr) => AddressClass

/**
 * The environment variable that makes the command line call some address ranges public
 * (comma- or space-separated CIDRs, e.g. `10.200.0.0/16`). For tests only: a namespaced stand-in
 * internet of private addresses; nothing else should set it.
 */
export const PUBLIC_RANGES_ENV = 'BITSWARM_PUBLIC_RANGES'

/**
 * libp2p's classification (@libp2p/utils `isLoopback`/`isPrivate`). An address that starts with
 * neither an IP nor a DNS name (`/memory/…`, `/unix/…`, a bare `/p2p-circuit`) is `private`:
 * no other host can dial it by itself. A relay address is classified by the relay's own address
 * in front (`/ip4/<relay>/tcp/…/p2p/<relay>/p2p-circuit`).
 */
export function defaultAddressClass (ma: Multiaddr): AddressClass {
  const config = tryGetNetConfig(ma)
  if (config == null) return 'private'
  if (config.type === 'ip4' || config.type === 'ip6') {
    if (isLoopback(ma)) return 'loopback'
    return isPrivate(ma) ? 'private' : 'public'
  }
  // a DNS name: localhost (RFC 6761) stays here, mDNS names (.local) on the LAN
  const host = config.host.toLowerCase().replace(/\.$/, '')
  if (host === 'localhost' || host.endsWith('.localhost')) return 'loopback'
  if (host === 'local' || host.endsWith('.local')) return 'private'
  return 'public'
}

/** The address can be reached from the internet (what the WAN DHT keeps). */
export function isPublicAddress (ma: Multiaddr, classify: AddressClassifier = defaultAddressClass): boolean {
  return classify(ma) === 'public'
}

/** The address is on a LAN or this host only: private or loopback (what the LAN DHT keeps). */
export function isPrivateAddress (ma: Multiaddr, classify: AddressClassifier = defaultAddressClass): boolean {
  return classify(ma) !== 'public'
}

/**
 * A classifier that calls the addresses in `cidrs` (IPv4 or IPv6, e.g. `10.200.0.0/16`,
 * `127.0.0.0/8`) public, and asks `base` about every other. Throws a RangeError naming a CIDR
 * that does not parse.
 */
export function withPublicRanges (cidrs: readonly string[], base: AddressClassifier = defaultAddressClass): AddressClassifier {
  const ranges = new BlockList()
  for (const cidr of cidrs) {
    const [net, bits, extra] = cidr.trim().split('/')
    const family = isIP(net ?? '')
    const prefix = Number(bits)
    const max = family === 4 ? 32 : 128
    if (family === 0 || extra != null || bits == null || !/^\d+$/.test(bits) || prefix > max) {
      throw new RangeError(`not an address range (CIDR such as 10.200.0.0/16): ${cidr}`)
    }
    ranges.addSubnet(net as string, prefix, family === 4 ? 'ipv4' : 'ipv6')
  }
  return (ma) => {
    const config = tryGetNetConfig(ma)
    if (config != null && (config.type === 'ip4' || config.type === 'ip6') && ranges.check(config.host, config.type === 'ip4' ? 'ipv4' : 'ipv6')) return 'public'
    return base(ma)
  }
}

/**
 * The classifier the environment asks for: `BITSWARM_PUBLIC_RANGES` (comma- or space-separated
 * CIDRs) called public on top of the default; undefined when it is unset or empty. For tests
 * (network namespaces playing the internet with 10.x addresses). Throws a RangeError on a bad
 * range.
 */
export function addressClassFromEnv (env: NodeJS.ProcessEnv = process.env): AddressClassifier | undefined {
  const ranges = (env[PUBLIC_RANGES_ENV] ?? '').split(/[\s,]+/).filter(r => r !== '')
  return ranges.length === 0 ? undefined : withPublicRanges(ranges)
}

/** A kad-dht `peerInfoMapper` that keeps a peer's public addresses (the WAN DHT's). */
export function publicAddressesMapper (classify: AddressClassifier = defaultAddressClass): (peer: PeerInfo) => PeerInfo {
  return (peer) => ({ ...peer, multiaddrs: peer.multiaddrs.filter(ma => isPublicAddress(ma, classify)) })
}

/** A kad-dht `peerInfoMapper` that keeps a peer's private and loopback addresses (the LAN DHT's). */
export function privateAddressesMapper (classify: AddressClassifier = defaultAddressClass): (peer: PeerInfo) => PeerInfo {
  return (peer) => ({ ...peer, multiaddrs: peer.multiaddrs.filter(ma => isPrivateAddress(ma, classify)) })
}
