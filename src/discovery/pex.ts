/**
 * Peer exchange (after BEP 11): a bounded view of the swarm to gossip from, and the conversion
 * between PeerAddress and the wire codec's `peers` entries.
 *
 * Pure: no timers and no I/O; `now` and `random` are injected so that tests are deterministic.
 */
import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import * as Digest from 'multiformats/hashes/digest'
import { PEERS_MAX_ADDR_LENGTH, PEERS_MAX_ADDRS, PEERS_MAX_COUNT, PEERS_MAX_ID_LENGTH, type WirePeer } from '../wire/codec.js'
import type { PeerAddress } from './types.js'

/** BEP 11: "limits the number of peers per message to 50". The codec rejects more. */
export const PEX_MAX_PEERS = PEERS_MAX_COUNT

export interface PexViewInit {
  /** Peers kept; when full, the one seen longest ago goes (default 200). */
  maxSize?: number
  /** Addresses kept per peer (default 8, what one wire entry carries). */
  maxAddrs?: number
  /** Milliseconds after which an entry is no longer gossiped (default 30 min). */
  maxAge?: number
  random?: () => number
  now?: () => number
}

interface Entry { peer: PeerAddress, lastSeen: number }

/**
 * A bounded partial view of the swarm, as in gossip-based overlays: enough peers to hand a few
 * to each neighbour, never the whole swarm, and biased to those seen recently. It is what we
 * vouch for to others (the swarm fills it with peers it had sessions with, at the addresses they
 * announced themselves), not the registry of the peers we know of: that is the peer book
 * (peer-book.ts), where what others tell us goes.
 */
export class PexView {
  private readonly entries = new Map<string, Entry>()
  private readonly maxSize: number
  private readonly maxAddrs: number
  private readonly maxAge: number
  private readonly random: () => number
  private readonly now: () => number

  constructor (init: PexViewInit = {}) {
    this.maxSize = init.maxSize ?? 200
    this.maxAddrs = init.maxAddrs ?? PEERS_MAX_ADDRS
    this.maxAge = init.maxAge ?? 30 * 60 * 1000
    this.random = init.random ?? Math.random
    this.now = init.now ?? Date.now
    if (!Number.isInteger(this.maxSize) || this.maxSize < 1) throw new RangeError(`maxSize must be a positive integer, got ${this.maxSize}`)
    if (!Number.isInteger(this.maxAddrs) || this.maxAddrs < 1) throw new RangeError(`maxAddrs must be a positive integer, got ${this.maxAddrs}`)
    if (!(this.maxAge >= 0)) throw new RangeError(`maxAge must be >= 0, got ${this.maxAge}`)
  }

  /**
   * Inserts a peer or refreshes it (lastSeen = now, its addresses replaced by these). An add with
   * no address only refreshes a known peer: a new peer without one is nothing to gossip.
   */
  add (peer: PeerAddress): void {
    const multiaddrs = [...new Set(peer.multiaddrs)].slice(0, this.maxAddrs)
    const known = this.entries.get(peer.peerId)
    if (multiaddrs.length === 0 && known == null) return
    const entry: Entry = { peer: { peerId: peer.peerId, multiaddrs: multiaddrs.length > 0 ? multiaddrs : known?.peer.multiaddrs ?? [] }, lastSeen: this.now() }
    // re-insert so that Map order stays oldest first when the clock only goes forward
    this.entries.delete(peer.peerId)
    if (this.entries.size >= this.maxSize) this.evictOldest()
    this.entries.set(peer.peerId, entry)
  }

  remove (peerId: string): void {
    this.entries.delete(peerId)
  }

  has (peerId: string): boolean {
    return this.entries.has(peerId)
  }

  /** Entries held, stale ones included (they are not sampled, and are the first evicted). */
  get size (): number {
    return this.entries.size
  }

  /**
   * Up to `n` distinct peers, each subset of the fresh (age <= maxAge), non-excluded peers equally
   * likely; all of them, shuffled, when there are `n` or fewer. Returns copies.
   */
  sample (n: number, exclude?: ReadonlySet<string>): PeerAddress[] {
    const now = this.now()
    const pool: PeerAddress[] = []
    for (const [id, { peer, lastSeen }] of this.entries) {
      if (now - lastSeen > this.maxAge || exclude?.has(id) === true) continue
      pool.push(peer)
    }
    const k = Math.min(Math.max(0, Math.floor(n)), pool.length)
    // partial Fisher–Yates: the first k slots are a uniform random k-subset in random order
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.random() * (pool.length - i))
      const t = pool[i]
      pool[i] = pool[j]
      pool[j] = t
    }
    return pool.slice(0, k).map(p => ({ peerId: p.peerId, multiaddrs: [...p.multiaddrs] }))
  }

  private evictOldest (): void {
    // a scan, not Map order: an injected clock may step back
    let oldest: string | undefined
    let oldestSeen = Infinity
    for (const [id, { lastSeen }] of this.entries) {
      if (lastSeen < oldestSeen) {
        oldest = id
        oldestSeen = lastSeen
      }
    }
    if (oldest != null) this.entries.delete(oldest)
  }
}

/**
 * Drops a trailing `/p2p/<id>` (PeerAddress addrs carry the id separately). Returns undefined when
 * that suffix names another peer: the address is then not this peer's. A `/p2p/` earlier in the
 * address (a relay's, before `/p2p-circuit`) is part of the route and stays.
 */
function withoutPeerSuffix (ma: Multiaddr, peerId: string): Multiaddr | undefined {
  const components = ma.getComponents()
  const last = components[components.length - 1]
  if (last?.name !== 'p2p') return ma
  if (last.value !== peerId) return undefined
  return multiaddr(components.slice(0, -1))
}

/**
 * PeerAddress → wire entries, within the codec's caps: at most 50 peers (BEP 11) and 8 addrs
 * each; an address that does not parse, is empty, is over 255 bytes or names another peer is
 * skipped, as is a peer whose id does not parse or that is left with no address.
 */
export function toWirePeers (peers: PeerAddress[]): WirePeer[] {
  const out: WirePeer[] = []
  for (const peer of peers) {
    if (out.length >= PEX_MAX_PEERS) break
    let id: Uint8Array
    try {
      id = peerIdFromString(peer.peerId).toMultihash().bytes
    } catch {
      continue
    }
    if (id.byteLength < 1 || id.byteLength > PEERS_MAX_ID_LENGTH) continue
    const addrs: Uint8Array[] = []
    const seen = new Set<string>()
    for (const addr of peer.multiaddrs) {
      if (addrs.length >= PEERS_MAX_ADDRS) break
      let ma: Multiaddr | undefined
      try {
        ma = withoutPeerSuffix(multiaddr(addr), peer.peerId)
      } catch {
        continue
      }
      if (ma == null) continue
      const bytes = ma.bytes
      if (bytes.byteLength < 1 || bytes.byteLength > PEERS_MAX_ADDR_LENGTH) continue
      const key = ma.toString()
      if (seen.has(key)) continue
      seen.add(key)
      addrs.push(bytes)
    }
    if (addrs.length > 0) out.push({ id, addrs })
  }
  return out
}

/**
 * Wire entries → PeerAddress. The codec checked only structure; here an id must be the multihash
 * of a key-based libp2p peer id (Ed25519, secp256k1, or RSA's sha256) and each addr a multiaddr. Bad
 * addrs are skipped; an entry with a bad id or left with no addr is dropped and counted, so the
 * caller can tell a peer that sends junk.
 */
export function fromWirePeers (raw: WirePeer[]): { peers: PeerAddress[], dropped: number } {
  const peers: PeerAddress[] = []
  let dropped = 0
  for (const entry of raw) {
    const peerId = decodePeerId(entry.id)
    if (peerId == null) {
      dropped++
      continue
    }
    const multiaddrs: string[] = []
    for (const bytes of entry.addrs) {
      let ma: Multiaddr | undefined
      try {
        ma = withoutPeerSuffix(multiaddr(bytes), peerId)
      } catch {
        continue
      }
      // `/` (no component) is a valid multiaddr, and useless to dial
      if (ma == null || ma.getComponents().length === 0) continue
      const text = ma.toString()
      if (!multiaddrs.includes(text)) multiaddrs.push(text)
    }
    if (multiaddrs.length === 0) {
      dropped++
      continue
    }
    peers.push({ peerId, multiaddrs })
  }
  return { peers, dropped }
}

function decodePeerId (bytes: Uint8Array): string | undefined {
  try {
    const peerId = peerIdFromMultihash(Digest.decode(bytes))
    // an identity multihash that is not a key decodes as a URL peer id: not a peer to dial
    if (peerId.type === 'url') return undefined
    // any digest under the sha256 code passes as an RSA peer id; a real one is 32 bytes
    if (peerId.type === 'RSA' && peerId.toMultihash().digest.byteLength !== 32) return undefined
    return peerId.toString()
  } catch {
    return undefined
  }
}
