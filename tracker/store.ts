/**
 * Where the tracker keeps its swarms. An interface so a shared store (e.g. Redis) could replace
 * the in-memory one without touching the announce logic (the chihaya split).
 *
 * Memory is bounded: peers per swarm, swarms and peers in total are capped (a new peer or swarm
 * past a cap gets TrackerFullError, after expired peers are swept), the completed counter of a
 * swarm without peers is kept for `historyTtl` only, and the last record seq of peers that left
 * is remembered for `replayWindow`, at most `maxPeersTotal` of them.
 */
import { TrackerFullError } from './errors.js'

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
}

export interface SwarmCounts {
  complete: number
  incomplete: number
  /** how many times event=completed was reported for the manifest */
  downloaded: number
}

export interface PeerStore {
  /**
   * Insert or replace a peer of a swarm; `peer.lastSeen` is now. Throws TrackerFullError when a
   * new peer or a new swarm would exceed a limit even after dropping peers seen before
   * `seenSince`; a known peer (even an expired one not yet swept) is always replaced.
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
}

export const DEFAULT_MAX_PEERS_PER_MANIFEST = 2000
export const DEFAULT_MAX_MANIFESTS = 10_000
export const DEFAULT_MAX_PEERS_TOTAL = 50_000
export const DEFAULT_REPLAY_WINDOW = 3600
export const DEFAULT_HISTORY_TTL = 86_400

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

  constructor (init: MemoryPeerStoreInit = {}) {
    this.maxPeersPerManifest = limit('maxPeersPerManifest', init.maxPeersPerManifest ?? DEFAULT_MAX_PEERS_PER_MANIFEST)
    this.maxManifests = limit('maxManifests', init.maxManifests ?? DEFAULT_MAX_MANIFESTS)
    this.maxPeersTotal = limit('maxPeersTotal', init.maxPeersTotal ?? DEFAULT_MAX_PEERS_TOTAL)
    this.replayWindowMs = seconds('replayWindow', init.replayWindow ?? DEFAULT_REPLAY_WINDOW) * 1000
    this.historyTtlMs = seconds('historyTtl', init.historyTtl ?? DEFAULT_HISTORY_TTL) * 1000
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
    if (this.swarms.get(manifest)?.peers.has(peer.peerId) !== true) this.admit(manifest, seenSince, now)
    // (re)fetched: admitting may have swept the swarm away
    let swarm = this.swarms.get(manifest)
    if (swarm == null) {
      swarm = { peers: new Map(), completed: 0 }
      this.swarms.set(manifest, swarm)
    }
    this.idle.delete(manifest)
    const k = key(manifest, peer.peerId)
    // delete first so that re-insertion moves the peer to the back (most recently seen)
    swarm.peers.delete(peer.peerId)
    swarm.peers.set(peer.peerId, peer)
    this.order.delete(k)
    this.order.set(k, { manifest, peerId: peer.peerId })
    this.remembered.delete(k)
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

  /** Throws TrackerFullError unless one more peer (and maybe one more swarm) fits. */
  private admit (manifest: string, seenSince: number, now: number): void {
    if (this.full(manifest) === undefined) return
    this.sweepFront(seenSince, now)
    const reason = this.full(manifest)
    if (reason === undefined) return
    if (reason === 'swarms') {
      // history yields to live swarms: drop the oldest counters of swarms without peers
      for (const m of this.idle.keys()) {
        if (this.swarms.size < this.maxManifests) break
        this.idle.delete(m)
        this.swarms.delete(m)
      }
      if (this.swarms.size < this.maxManifests) return
      throw new TrackerFullError(`tracker is full (max ${this.maxManifests} swarms)`)
    }
    if (reason === 'swarm') throw new TrackerFullError(`swarm is full (max ${this.maxPeersPerManifest} peers)`)
    throw new TrackerFullError(`tracker is full (max ${this.maxPeersTotal} peers)`)
  }

  /** Which limit one more peer of `manifest` would exceed; swarms last, as only it can be relieved. */
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
