/**
 * The peer book: the peers we know of, one registry for the whole peer. Every source that names
 * a peer writes here — trackers, the DHT, bootstrap addresses and the peer cache (through
 * Discovery), peer exchange (through the swarm) — and every reader reads here: the swarm when it
 * starts (it dials what was heard of during the manifest race) and the peer cache when it saves.
 *
 * Each peer is kept once, with the addresses and the source that first named it and when; a
 * later mention changes neither (the first source is the one its stats count, and a gossiper
 * cannot graft addresses onto a peer someone else told us of). A peer we had a session with is
 * marked `reached`: those are what the peer cache keeps for the next run. Our own id is refused
 * here and nowhere else, as is a peer without an address (nothing to dial or pass on).
 *
 * Ids and addresses are parsed once, at the edge where they come in (the tracker client, the
 * peer-exchange codec, the DHT's PeerIds, the cache file, `--bootstrap`): the book takes them as
 * given. Bounded: when full, the peer heard of first goes, among those never reached (a crowd of
 * fake tracker entries cannot push out the peers the cache should remember); only when every peer
 * was reached does the oldest reached one go.
 *
 * What it is not: the swarm's sessions (swarm/sessions.ts: who we are connected to now), the
 * peer-exchange view (discovery/pex.ts: the peers we vouch for to others, with the addresses they
 * gave us themselves), the manifest race's queue (exchange/race.ts: whom to ask next) and the
 * dial guard (discovery/dial-guard.ts: which addresses may be dialled) — each is state about
 * what we do with peers, not a second list of them. libp2p's peer store is libp2p's.
 *
 * Pure: no I/O, no timers; the clock is injected.
 */
import { MAX_ANNOUNCE_ADDRS, PEER_SOURCES, type PeerAddress, type PeerSource } from './types.js'

/** peers kept at most (a tracker gives up to 200 per answer; fake entries must not grow it without end) */
export const MAX_KNOWN_PEERS = 1_000
/** addresses kept per peer: as many as a tracker announce carries, the most any source gives */
export const MAX_KNOWN_ADDRS = MAX_ANNOUNCE_ADDRS

/** A peer in the book. */
export interface KnownPeer extends PeerAddress {
  /** the first source that told us of it */
  readonly source: PeerSource
  /** ms when it did */
  readonly since: number
  /** ms of the last session with it in this run (undefined: none yet) */
  readonly reachedAt: number | undefined
}

/** A peer we had a session with, as the peer cache keeps it. */
export interface ReachedPeer extends PeerAddress {
  /** ms of the last session */
  lastSeen: number
}

export interface PeerBookInit {
  /** our own peer id: never kept, never passed on */
  self: string
  /** peers kept (default MAX_KNOWN_PEERS) */
  maxPeers?: number
  now?: () => number
}

interface Entry { peer: PeerAddress, source: PeerSource, since: number, reachedAt: number | undefined }

export class PeerBook {
  readonly self: string
  private readonly maxPeers: number
  private readonly now: () => number
  /** Map order is the order we heard of them: the first heard of go first */
  private readonly entries = new Map<string, Entry>()

  constructor (init: PeerBookInit) {
    this.self = init.self
    this.maxPeers = init.maxPeers ?? MAX_KNOWN_PEERS
    this.now = init.now ?? Date.now
    if (!Number.isInteger(this.maxPeers) || this.maxPeers < 1) throw new RangeError(`maxPeers must be a positive integer, got ${this.maxPeers}`)
  }

  /**
   * `source` told us of `peers`. The new ones are kept; a peer known already keeps its first
   * source and addresses. Returns the peers worth acting on — every one but ourselves, those
   * without an address and repeats within `peers`, known or not, as given — so that the caller
   * can dial them (a tracker naming again a peer we lost is a reason to dial it again).
   */
  add (peers: readonly PeerAddress[], source: PeerSource): PeerAddress[] {
    const passed: PeerAddress[] = []
    const seen = new Set<string>()
    for (const p of peers) {
      if (p.peerId === this.self || p.multiaddrs.length === 0 || seen.has(p.peerId)) continue
      seen.add(p.peerId)
      passed.push(p)
      if (this.entries.has(p.peerId)) continue
      if (this.entries.size >= this.maxPeers) this.evict()
      this.entries.set(p.peerId, {
        peer: { peerId: p.peerId, multiaddrs: p.multiaddrs.slice(0, MAX_KNOWN_ADDRS) },
        source,
        since: this.now(),
        reachedAt: undefined
      })
    }
    return passed
  }

  has (peerId: string): boolean {
    return this.entries.has(peerId)
  }

  get (peerId: string): KnownPeer | undefined {
    const e = this.entries.get(peerId)
    return e == null ? undefined : known(e)
  }

  /** The first source that told us of `peerId`. */
  sourceOf (peerId: string): PeerSource | undefined {
    return this.entries.get(peerId)?.source
  }

  /** Peers kept now. */
  get size (): number {
    return this.entries.size
  }

  /** The peers `source` told us of first, in the order we heard of them (copies). */
  peers (source: PeerSource): PeerAddress[] {
    const out: PeerAddress[] = []
    for (const e of this.entries.values()) if (e.source === source) out.push(copy(e.peer))
    return out
  }

  /** Every peer, by source in PEER_SOURCES order, then in the order we heard of them. */
  all (): KnownPeer[] {
    const out: KnownPeer[] = []
    for (const source of PEER_SOURCES) for (const e of this.entries.values()) if (e.source === source) out.push(known(e))
    return out
  }

  /**
   * A session with `peerId` opened (or, for a bootstrap peer, a connection): the peer cache
   * remembers it for the next run. A peer we were not told of (it dialled us) is not kept: we
   * know no address of it to give the next run. Says whether it was known.
   */
  reached (peerId: string): boolean {
    const e = this.entries.get(peerId)
    if (e == null) return false
    e.reachedAt = this.now()
    return true
  }

  /** The peers reached in this run, with when: what the peer cache saves. */
  reachedPeers (): ReachedPeer[] {
    const out: ReachedPeer[] = []
    for (const e of this.entries.values()) if (e.reachedAt !== undefined) out.push({ ...copy(e.peer), lastSeen: e.reachedAt })
    return out
  }

  /** The first heard of among the peers never reached; if every one was, the first heard of. */
  private evict (): void {
    let victim: string | undefined
    for (const [id, e] of this.entries) {
      if (e.reachedAt === undefined) { victim = id; break }
      victim ??= id
    }
    if (victim !== undefined) this.entries.delete(victim)
  }
}

function copy (peer: PeerAddress): PeerAddress {
  return { peerId: peer.peerId, multiaddrs: [...peer.multiaddrs] }
}

function known (e: Entry): KnownPeer {
  return { ...copy(e.peer), source: e.source, since: e.since, reachedAt: e.reachedAt }
}
