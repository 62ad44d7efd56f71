/**
 * Where the tracker keeps its swarms. An interface so a shared store (e.g. Redis) could replace
 * the in-memory one without touching the announce logic (the chihaya split).
 *
 * Memory is bounded: peers per swarm, swarms and peers in total are capped, the completed counter
 * of a swarm without peers is kept for `historyTtl` only, and the last record seq of peers that
 * left is remembered for `replayWindow`, at most `maxPeersTotal` of them.
 *
 * Identities are free, addresses are not: quotas go by peer id (swarms it is in) and by host (the
 * announcer's IP, an IPv6 /64: peer entries in all). Past a cap a newcomer does not simply get a
 * 503: the longest-silent entry of the host holding the most entries (in the swarm, or in the
 * tracker) yields its place, as long as that host holds more than the newcomer's own. One host
 * can fill free space but never push out a host with fewer entries; a 503 remains only when every
 * host holds its fair share.
 */
import { QuotaExceededError, TrackerFullError } from './errors.js'

export interface PeerEntry {
  peerId: string
  multiaddrs: string[]
  left: number
  /** ms, clock of the tracker's `now` */
  lastSeen: number
  /** this peer's event=completed was already counted (a client may repeat it on retry) */
  countedComplete: boolean
  /** seqNumber of the signed peer record last accepted from this peer for this swarm */
  seq: bigint
  /** the quota group of the address the announce came from (see addresses.ts hostOf) */
  host: string
}

export interface SwarmCounts {
  complete: number
  incomplete: number
  /** how many times event=completed was reported for the manifest */
  downloaded: number
}

export interface PeerStore {
  /**
   * Insert or replace a peer of a swarm; `peer.lastSeen` is now. For a new peer: throws
   * QuotaExceededError past its peer id's or host's quota, and TrackerFullError when a limit would
   * be exceeded even after dropping peers seen before `seenSince` and evicting as the store's
   * policy allows; a known peer (even an expired one not yet swept) is always replaced.
   */
  putPeer: (manifest: string, peer: PeerEntry, seenSince: number) => void
  /** the peer if known and seen at or after `seenSince` */
  getPeer: (manifest: string, peerId: string, seenSince: number) => PeerEntry | undefined
  /**
   * seq of the last record accepted from the peer for the manifest: from its entry (live or
   * expired) or, after it left or expired, as remembered until the replay window closes
   */
  lastSeq: (manifest: string, peerId: string, now: number) => bigint | undefined
  /** remove a peer (event=stopped) and remember `seq` for the replay window */
  removePeer: (manifest: string, peerId: string, seq: bigint, now: number) => void
  /** live peers of a swarm: seen at or after `seenSince` (expired ones may not be swept yet) */
  peers: (manifest: string, seenSince: number) => PeerEntry[]
  incrementCompleted: (manifest: string) => void
  counts: (manifest: string, seenSince: number) => SwarmCounts
  /** manifests with peers, or without peers but with a completed counter still kept */
  manifests: () => string[]
  /** drop peers seen before `seenSince` and history past its time; returns how many peers */
  sweep: (seenSince: number, now: number) => number
}

export interface MemoryPeerStoreInit {
  /** default 2000 */
  maxPeersPerManifest?: number
  /** swarms, with peers or only a completed counter; default 10_000 */
  maxManifests?: number
  /** default 50_000; also caps how many left peers' seqs are remembered */
  maxPeersTotal?: number
  /** seconds the last seq of a peer that stopped or expired is remembered; default 3600 */
  replayWindow?: number
  /** seconds a swarm's completed counter outlives its last peer; default 86_400 */
  historyTtl?: number
  /** swarms one peer id may be in at once; default 256 */
  maxSwarmsPerPeer?: number
  /** peer entries (all swarms) announced from one IP (an IPv6 /64); default 5000 */
  maxPeersPerIp?: number
}

export const DEFAULT_MAX_PEERS_PER_MANIFEST = 2000
export const DEFAULT_MAX_MANIFESTS = 10_000
export const DEFAULT_MAX_PEERS_TOTAL = 50_000
export const DEFAULT_REPLAY_WINDOW = 3600
export const DEFAULT_HISTORY_TTL = 86_400
export const DEFAULT_MAX_SWARMS_PER_PEER = 256
export const DEFAULT_MAX_PEERS_PER_IP = 5000

export class StoreConfigError extends Error {
  override name = 'StoreConfigError'
}

interface Swarm {
  peers: Map<string, PeerEntry>
  completed: number
}

interface Slot { manifest: string, peerId: string }

export class MemoryPeerStore implements PeerStore {
  readonly maxPeersPerManifest: number
  readonly maxManifests: number
  readonly maxPeersTotal: number
  readonly maxSwarmsPerPeer: number
  readonly maxPeersPerIp: number
  private readonly replayWindowMs: number
  private readonly historyTtlMs: number
  private readonly swarms = new Map<string, Swarm>()
  /**
   * Every peer of every swarm, least recently announced first (re-inserted on each announce), so
   * expired peers are found at the front without scanning everyone. With a clock that steps back
   * the order is only nearly right; the periodic full sweep catches what the front sweep misses.
   */
  private readonly order = new Map<string, Slot>()
  /** swarms without peers kept for their completed counter → when they became empty; oldest first */
  private readonly idle = new Map<string, number>()
  /** last seq of peers that stopped or expired, oldest first */
  private readonly remembered = new Map<string, { seq: bigint, until: number }>()
  /** peer id → how many swarms it is in */
  private readonly swarmsOfPeer = new Map<string, number>()
  /** host → its entries (key → slot), least recently announced first */
  private readonly entriesOfHost = new Map<string, Map<string, Slot>>()

  constructor (init: MemoryPeerStoreInit = {}) {
    this.maxPeersPerManifest = limit('maxPeersPerManifest', init.maxPeersPerManifest ?? DEFAULT_MAX_PEERS_PER_MANIFEST)
    this.maxManifests = limit('maxManifests', init.maxManifests ?? DEFAULT_MAX_MANIFESTS)
    this.maxPeersTotal = limit('maxPeersTotal', init.maxPeersTotal ?? DEFAULT_MAX_PEERS_TOTAL)
    this.replayWindowMs = seconds('replayWindow', init.replayWindow ?? DEFAULT_REPLAY_WINDOW) * 1000
    this.historyTtlMs = seconds('historyTtl', init.historyTtl ?? DEFAULT_HISTORY_TTL) * 1000
    this.maxSwarmsPerPeer = limit('maxSwarmsPerPeer', init.maxSwarmsPerPeer ?? DEFAULT_MAX_SWARMS_PER_PEER)
    this.maxPeersPerIp = limit('maxPeersPerIp', init.maxPeersPerIp ?? DEFAULT_MAX_PEERS_PER_IP)
  }

  /** entries announced from `host` (expired ones not yet swept included) */
  entriesOf (host: string): number {
    return this.entriesOfHost.get(host)?.size ?? 0
  }

  /** peers held, expired ones not yet swept included */
  get size (): number {
    return this.order.size
  }

  /** seqs remembered for peers that left */
  get rememberedSize (): number {
    return this.remembered.size
  }

  putPeer (manifest: string, peer: PeerEntry, seenSince: number): void {
    const now = peer.lastSeen
    const prev = this.swarms.get(manifest)?.peers.get(peer.peerId)
    if (prev == null) this.admit(manifest, peer, seenSince, now)
    // (re)fetched: admitting may have swept the swarm away
    let swarm = this.swarms.get(manifest)
    if (swarm == null) {
      swarm = { peers: new Map(), completed: 0 }
      this.swarms.set(manifest, swarm)
    }
    this.idle.delete(manifest)
    const k = key(manifest, peer.peerId)
    const slot = { manifest, peerId: peer.peerId }
    // delete first so that re-insertion moves the peer to the back (most recently seen)
    swarm.peers.delete(peer.peerId)
    swarm.peers.set(peer.peerId, peer)
    this.order.delete(k)
    this.order.set(k, slot)
    this.remembered.delete(k)
    if (prev == null) this.swarmsOfPeer.set(peer.peerId, (this.swarmsOfPeer.get(peer.peerId) ?? 0) + 1)
    else this.unlinkHost(prev.host, k)
    let entries = this.entriesOfHost.get(peer.host)
    if (entries == null) {
      entries = new Map()
      this.entriesOfHost.set(peer.host, entries)
    }
    entries.set(k, slot)
  }

  getPeer (manifest: string, peerId: string, seenSince: number): PeerEntry | undefined {
    const peer = this.swarms.get(manifest)?.peers.get(peerId)
    return peer != null && peer.lastSeen >= seenSince ? peer : undefined
  }

  lastSeq (manifest: string, peerId: string, now: number): bigint | undefined {
    const peer = this.swarms.get(manifest)?.peers.get(peerId)
    if (peer != null) return peer.seq
    const r = this.remembered.get(key(manifest, peerId))
    return r != null && r.until >= now ? r.seq : undefined
  }

  removePeer (manifest: string, peerId: string, seq: bigint, now: number): void {
    const swarm = this.swarms.get(manifest)
    const peer = swarm?.peers.get(peerId)
    if (swarm != null && peer != null) this.drop(manifest, swarm, peer, now, seq > peer.seq ? seq : peer.seq)
    // also for a peer we did not know: its stopped may have overtaken its started
    else this.remember(key(manifest, peerId), seq, now)
  }

  peers (manifest: string, seenSince: number): PeerEntry[] {
    const swarm = this.swarms.get(manifest)
    if (swarm == null) return []
    const out: PeerEntry[] = []
    for (const peer of swarm.peers.values()) {
      if (peer.lastSeen >= seenSince) out.push(peer)
    }
    return out
  }

  incrementCompleted (manifest: string): void {
    const swarm = this.swarms.get(manifest)
    // the logic counts a completion only after putPeer admitted the peer, so the swarm exists;
    // a counter for an unknown swarm would bypass maxManifests
    if (swarm != null) swarm.completed++
  }

  counts (manifest: string, seenSince: number): SwarmCounts {
    const swarm = this.swarms.get(manifest)
    let complete = 0
    let incomplete = 0
    if (swarm != null) {
      for (const peer of swarm.peers.values()) {
        if (peer.lastSeen < seenSince) continue
        if (peer.left === 0) complete++
        else incomplete++
      }
    }
    return { complete, incomplete, downloaded: swarm?.completed ?? 0 }
  }

  manifests (): string[] {
    return [...this.swarms.keys()]
  }

  sweep (seenSince: number, now: number): number {
    let dropped = 0
    for (const [manifest, swarm] of this.swarms) {
      for (const peer of swarm.peers.values()) {
        if (peer.lastSeen < seenSince) {
          this.drop(manifest, swarm, peer, now)
          dropped++
        }
      }
    }
    this.forget(now)
    return dropped
  }

  /**
   * Makes room for a new entry or throws: quotas first (they refuse only the announcer), then the
   * limits, each relieved by sweeping, dropping history, then evicting (see evict).
   */
  private admit (manifest: string, peer: PeerEntry, seenSince: number, now: number): void {
    const overQuota = (): boolean => (this.swarmsOfPeer.get(peer.peerId) ?? 0) >= this.maxSwarmsPerPeer || this.entriesOf(peer.host) >= this.maxPeersPerIp
    // its own expired entries may be what holds the quota
    if (overQuota()) this.sweepFront(seenSince, now)
    if ((this.swarmsOfPeer.get(peer.peerId) ?? 0) >= this.maxSwarmsPerPeer) {
      throw new QuotaExceededError(`peer is in too many swarms (max ${this.maxSwarmsPerPeer})`)
    }
    if (this.entriesOf(peer.host) >= this.maxPeersPerIp) {
      throw new QuotaExceededError(`too many peers announced from this address (max ${this.maxPeersPerIp})`)
    }
    if (this.full(manifest) === undefined) return
    this.sweepFront(seenSince, now)
    // each round frees one place; a few rounds at most (one limit after another)
    for (let round = 0; round < 4; round++) {
      const reason = this.full(manifest)
      if (reason === undefined) return
      if (reason === 'swarms' && this.dropHistory()) continue
      if (this.evict(reason, manifest, peer.host, now)) continue
      if (reason === 'swarms') throw new TrackerFullError(`tracker is full (max ${this.maxManifests} swarms)`)
      if (reason === 'swarm') throw new TrackerFullError(`swarm is full (max ${this.maxPeersPerManifest} peers)`)
      throw new TrackerFullError(`tracker is full (max ${this.maxPeersTotal} peers)`)
    }
    throw new TrackerFullError('tracker is full')
  }

  /** History yields to live swarms: drops the oldest counter of a swarm without peers, if any. */
  private dropHistory (): boolean {
    for (const m of this.idle.keys()) {
      this.idle.delete(m)
      this.swarms.delete(m)
      return true
    }
    return false
  }

  /**
   * Frees one place for a newcomer from `host`, taken from the hosts holding the most entries (in
   * the swarm for 'swarm', in the tracker otherwise), and only from hosts holding more than `host`
   * does: their longest-silent entry goes; for 'swarms' an entry that is its swarm's only peer, so
   * that the swarm goes. Costs a pass over the swarm or the hosts, only when at a limit.
   */
  private evict (reason: 'peers' | 'swarm' | 'swarms', manifest: string, host: string, now: number): boolean {
    if (reason === 'swarm') {
      const swarm = this.swarms.get(manifest)
      if (swarm == null) return false
      const counts = new Map<string, number>()
      for (const p of swarm.peers.values()) counts.set(p.host, (counts.get(p.host) ?? 0) + 1)
      const victims = largest(counts, host)
      // peers are kept least recently announced first
      for (const p of swarm.peers.values()) {
        if (victims.has(p.host)) {
          this.drop(manifest, swarm, p, now)
          return true
        }
      }
      return false
    }
    const counts = new Map<string, number>()
    for (const [h, entries] of this.entriesOfHost) counts.set(h, entries.size)
    if (reason === 'peers') {
      let oldest: { slot: Slot, peer: PeerEntry, swarm: Swarm } | undefined
      for (const h of largest(counts, host)) {
        const slot = this.entriesOfHost.get(h)?.values().next().value
        const swarm = slot === undefined ? undefined : this.swarms.get(slot.manifest)
        const peer = slot === undefined ? undefined : swarm?.peers.get(slot.peerId)
        if (slot !== undefined && swarm != null && peer != null && (oldest == null || peer.lastSeen < oldest.peer.lastSeen)) oldest = { slot, peer, swarm }
      }
      if (oldest == null) return false
      this.drop(oldest.slot.manifest, oldest.swarm, oldest.peer, now)
      return true
    }
    // 'swarms': any host above the newcomer's, the largest first
    const mine = counts.get(host) ?? 0
    const above = [...counts].filter(([h, n]) => n > mine && h !== host).sort((a, b) => b[1] - a[1])
    for (const [h] of above) {
      for (const slot of this.entriesOfHost.get(h)?.values() ?? []) {
        const swarm = this.swarms.get(slot.manifest)
        const p = swarm?.peers.get(slot.peerId)
        if (swarm == null || p == null || swarm.peers.size > 1) continue
        this.drop(slot.manifest, swarm, p, now)
        // a swarm with a completed counter stays as history: that goes too, to free the place
        if (this.idle.delete(slot.manifest)) this.swarms.delete(slot.manifest)
        return true
      }
    }
    return false
  }

  /** Which limit one more peer of `manifest` would exceed. */
  private full (manifest: string): 'peers' | 'swarm' | 'swarms' | undefined {
    if (this.order.size >= this.maxPeersTotal) return 'peers'
    const swarm = this.swarms.get(manifest)
    if (swarm != null) return swarm.peers.size >= this.maxPeersPerManifest ? 'swarm' : undefined
    return this.swarms.size >= this.maxManifests ? 'swarms' : undefined
  }

  /** Drop expired peers from the front of `order`: O(expired), cheap enough for every admission. */
  private sweepFront (seenSince: number, now: number): void {
    for (const slot of this.order.values()) {
      const swarm = this.swarms.get(slot.manifest)
      const peer = swarm?.peers.get(slot.peerId)
      if (swarm == null || peer == null) {
        this.order.delete(key(slot.manifest, slot.peerId)) // cannot happen; never loop on it
        continue
      }
      if (peer.lastSeen >= seenSince) break
      this.drop(slot.manifest, swarm, peer, now)
    }
    this.forget(now)
  }

  /** Forgets a peer, remembering `seq` (its last, or a later one from its `stopped`). */
  private drop (manifest: string, swarm: Swarm, peer: PeerEntry, now: number, seq: bigint = peer.seq): void {
    const k = key(manifest, peer.peerId)
    swarm.peers.delete(peer.peerId)
    this.order.delete(k)
    const n = (this.swarmsOfPeer.get(peer.peerId) ?? 1) - 1
    if (n > 0) this.swarmsOfPeer.set(peer.peerId, n)
    else this.swarmsOfPeer.delete(peer.peerId)
    this.unlinkHost(peer.host, k)
    // an expired peer's captured record must not re-list it either
    this.remember(k, seq, now)
    if (swarm.peers.size > 0) return
    // the completed counter is the swarm's history (scrape "downloaded"): kept a while
    if (swarm.completed > 0) {
      this.idle.delete(manifest)
      this.idle.set(manifest, now)
    } else {
      this.swarms.delete(manifest)
    }
  }

  private unlinkHost (host: string, k: string): void {
    const entries = this.entriesOfHost.get(host)
    if (entries == null) return
    entries.delete(k)
    if (entries.size === 0) this.entriesOfHost.delete(host)
  }

  private remember (k: string, seq: bigint, now: number): void {
    const prev = this.remembered.get(k)
    this.remembered.delete(k)
    this.remembered.set(k, { seq: prev != null && prev.seq > seq ? prev.seq : seq, until: now + this.replayWindowMs })
    // bounded: past the cap the oldest memory goes first (its replay window is the shortest left)
    for (const oldest of this.remembered.keys()) {
      if (this.remembered.size <= this.maxPeersTotal) break
      this.remembered.delete(oldest)
    }
  }

  /** Drop remembered seqs and idle swarms past their time; both maps are oldest first. */
  private forget (now: number): void {
    for (const [k, r] of this.remembered) {
      if (r.until >= now) break
      this.remembered.delete(k)
    }
    for (const [manifest, since] of this.idle) {
      if (since + this.historyTtlMs >= now) break
      this.idle.delete(manifest)
      this.swarms.delete(manifest)
    }
  }
}

/** The keys sharing the largest count, if that count exceeds `than`'s; else none. */
function largest (counts: Map<string, number>, than: string): Set<string> {
  const floor = counts.get(than) ?? 0
  let max = floor
  for (const [k, n] of counts) if (n > max && k !== than) max = n
  const out = new Set<string>()
  if (max === floor) return out
  for (const [k, n] of counts) if (n === max && k !== than) out.add(k)
  return out
}

// manifests are CID strings and peer ids base58/base32: neither holds a space
function key (manifest: string, peerId: string): string {
  return `${manifest} ${peerId}`
}

function limit (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new StoreConfigError(`${name} must be a positive integer`)
  return value
}

function seconds (name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new StoreConfigError(`${name} must be a non-negative number of seconds`)
  return value
}
