/**
 * Which of a peer's signed addresses the tracker hands out, and which host an announce counts
 * against. A signed record proves who announced, not that the addresses are theirs: fresh keys
 * could point a whole swarm at a third party's port. So the tracker lists only addresses on the
 * IP the announce came from (BitTorrent trackers do the same with the source IP). Pure: the
 * source IP comes from the HTTP edge.
 */
import { isIP } from 'node:net'

/** Canonical text of an IP (IPv4-mapped IPv6 as IPv4, IPv6 compressed, lower case); '' if not an IP. */
export function normalizeIp (text: string | undefined): string {
  if (text === undefined) return ''
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text)
  if (mapped != null) return mapped[1]
  const family = isIP(text)
  if (family === 4) return text
  if (family !== 6) return ''
  try {
    // URL gives the canonical (RFC 5952) form, in brackets
    return new URL(`http://[${text}]/`).hostname.slice(1, -1)
  } catch {
    return ''
  }
}

/**
 * The quota group of an IP: an IPv4 address itself, an IPv6 address by its /64 (one host or
 * home usually gets a whole /64, so counting single IPv6 addresses would make quotas free).
 */
export function hostOf (ip: string): string {
  if (!ip.includes(':')) return ip
  const head = ip.split('::')[0].split(':')
  const tail = ip.includes('::') ? ip.split('::')[1].split(':').filter(s => s !== '') : []
  // expand '::' so the first four groups are explicit
  const groups = ip.includes('::') ? [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail] : head
  return `${groups.slice(0, 4).map(g => g === '' ? '0' : g).join(':')}::/64`
}

/**
 * The addresses of `multiaddrs` (normalized, from a verified record) that are on `sourceIp`; an
 * unspecified host (0.0.0.0, ::) means "wherever you see me" and becomes the source IP. Besides,
 * a circuit address through one of `relays` (the tracker's own relay, `tracker --relay`: its
 * address with `/p2p/<id>`), which can only reach a peer holding a reservation there. Anything
 * else (another IP, a DNS name, someone else's relay) is not listed: the tracker cannot tell it
 * is the announcer's.
 */
export function ownAddrs (multiaddrs: string[], sourceIp: string, relays: readonly string[] = []): string[] {
  if (sourceIp === '') return []
  const proto = sourceIp.includes(':') ? 'ip6' : 'ip4'
  const out = new Set<string>()
  for (const text of multiaddrs) {
    const circuit = text.indexOf('/p2p-circuit')
    if (circuit >= 0) {
      // `<relay>/p2p-circuit`, nothing after it (the peer id travels beside the addresses)
      if (text.endsWith('/p2p-circuit') && relays.includes(text.slice(0, circuit))) out.add(text)
      continue
    }
    // the record's text is canonical (record.ts checks it round-trips): no need to parse again
    const m = /^\/(ip4|ip6)\/([^/]+)(.*)$/.exec(text)
    if (m == null || m[1] !== proto) continue
    const ip = normalizeIp(m[2])
    if (ip === sourceIp || ip === '0.0.0.0' || ip === '::') out.add(`/${proto}/${sourceIp}${m[3]}`)
  }
  return [...out]
}
