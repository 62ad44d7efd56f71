/**
 * Where the tracker keeps its swarms: the PeerStore interface (the chihaya split: the announce
 * logic does not know which store it runs on) and the in-memory store, the default.
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
import { QuotaExceededError, StaleRecordError, TrackerFullError } from './errors.js'

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

/** What an announce answer lists of another peer (a store may hand out its full entries). */
export interface PeerCandidate {
  peerId: string
  multiaddrs: string[]
  /** the quota group it announced from: answers are spread over hosts (see logic.ts sampleByHost) */
  host: string
}

/**
 * One announce as a store applies it, in one atomic step: the replay check, the update (or the
 * removal for `stopped`), counting a completion once per peer, then the counts and candidates the
 * answer is made of. Two copies of one signed record can never both pass, and concurrent
 * announces (other tracker instances on a shared store included) never corrupt counts.
 */
export interface StoreAnnounce {
  manifest: string
  peerId: string
  /**
   * seqNumber of the announce's signed record: unless newer than the last one accepted from this
   * peer for this manifest (live, expired or stopped within the replay window), StaleRecordError
   */
  seq: bigint
  /** 'stopped' removes the peer; 'completed' counts once per peer (clients retry it) */
  event?: 'started' | 'completed' | 'stopped'
  /** what the tracker will hand out (already filtered to the announcer's own addresses) */
  multiaddrs: string[]
  left: number
  /** the quota group of the address the announce came from (see addresses.ts hostOf) */
  host: string
  /** ms, the tracker's clock */
  now: number
  /** oldest lastSeen still alive (see logic.ts seenSince) */
  seenSince: number
  /** how many peers the answer lists */
  numwant: number
}

export interface StoreAnnounceResult {
  /**
   * Other live peers of the swarm that have addresses, for the logic to sample from: all of them,
   * or a random subset (a shared store) holding at least `numwant` when there are that many.
   * Empty for `stopped`. A fresh array the caller may reorder; the entries must not be mutated.
   */
  candidates: PeerCandidate[]
  /** the swarm's counts after this announce */
  counts: SwarmCounts
}

export interface SwarmSummary extends SwarmCounts {
  manifest: string
}

/**
 * Where the tracker keeps its swarms. Asynchronous, so a shared store (Redis: redis-store.ts)
 * fits behind it as well as the in-memory default.
 *
 * Refusals: announce throws StaleRecordError (a replay), QuotaExceededError (the announcer's
 * quota, 429) and TrackerFullError (a limit, 503). Any other failure is the store's own (a shared
 * store that cannot be reached throws StoreUnavailableError, 503): the tracker answers it and goes
 * on.
 */
export interface PeerStore {
  announce: (announce: StoreAnnounce) => Promise<StoreAnnounceResult>
  /** counts of each manifest (zeros for an unknown one), in the order asked */
  scrape: (manifests: string[], seenSince: number, now: number) => Promise<SwarmCounts[]>
  /** every swarm held (with live peers, or only a completed counter still kept), with its counts */
  swarms: (seenSince: number, now: number) => Promise<SwarmSummary[]>
  /**
   * Drop expired peers and history past its time now; returns how many peers. Only a store that
   * expires nothing by itself has it (memory); the tracker calls it periodically.
   */
  sweep?: (seenSince: number, now: number) => number
  /** let go of connections (a shared store); the tracker calls it on stop */
  close?: () => Promise<void>
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

/**
 * The default store: one process's memory, with synchronous parts (putPeer, peers, counts, …)
 * that the PeerStore operations are made of. Being synchronous, an announce is atomic for free.
 */
export class MemoryPeerStore implements PeerStore {
  readonly limits: StoreLimits
  private readonly swarmMap = new Map<string, Swarm>()
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
    this.limits = storeLimits(init)
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

  async announce (a: StoreAnnounce): Promise<StoreAnnounceResult> {
    return this.announceNow(a)
  }

  /** announce(), synchronously: from the seq check to the update, no other announce can run */
  announceNow (a: StoreAnnounce): StoreAnnounceResult {
    // replay protection: a captured record (even of a stopped or expired peer) is worth nothing
    const last = this.lastSeq(a.manifest, a.peerId, a.now)
    if (last !== undefined && a.seq <= last) {
      throw new StaleRecordError(`record seq ${a.seq} is not newer than the last accepted (${last})`)
    }
    if (a.event === 'stopped') {
      this.removePeer(a.manifest, a.peerId, a.seq, a.now)
      return { candidates: [], counts: this.counts(a.manifest, a.seenSince) }
    }
    const prev = this.getPeer(a.manifest, a.peerId, a.seenSince)
    // Count a peer's completion once: clients retry event=completed when an answer is lost.
    const countNow = a.event === 'completed' && prev?.countedComplete !== true
    // put first: it may refuse a new peer (limits), and then nothing else may change
    this.putPeer(a.manifest, {
      peerId: a.peerId,
      multiaddrs: a.multiaddrs,
      left: a.left,
      lastSeen: a.now,
      countedComplete: countNow || (prev?.countedComplete ?? false),
      seq: a.seq,
      host: a.host
    }, a.seenSince)
    if (countNow) this.incrementCompleted(a.manifest)
    // nobody can dial a peer without addresses, so it is counted but not handed out
    const candidates = this.peers(a.manifest, a.seenSince).filter(p => p.peerId !== a.peerId && p.multiaddrs.length > 0)
    return { candidates, counts: this.counts(a.manifest, a.seenSince) }
  }

  async scrape (manifests: string[], seenSince: number): Promise<SwarmCounts[]> {
    return manifests.map(m => this.counts(m, seenSince))
  }

  async swarms (seenSince: number): Promise<SwarmSummary[]> {
    return this.manifests().map(manifest => ({ manifest, ...this.counts(manifest, seenSince) }))
  }

  /**
   * Insert or replace a peer of a swarm; `peer.lastSeen` is now. For a new peer: throws
   * QuotaExceededError past its peer id's or host's quota, and TrackerFullError when a limit would
   * be exceeded even after dropping peers seen before `seenSince` and evicting as the store's
   * policy allows; a known peer (even an expired one not yet swept) is always replaced.
   */
  putPeer (manifest: string, peer: PeerEntry, seenSince: number): void {
    const now = peer.lastSeen
    const prev = this.swarmMap.get(manifest)?.peers.get(peer.peerId)
    if (prev == null) this.admit(manifest, peer, seenSince, now)
    // (re)fetched: admitting may have swept the swarm away
    let swarm = this.swarmMap.get(manifest)
    if (swarm == null) {
      swarm = { peers: new Map(), completed: 0 }
      this.swarmMap.set(manifest, swarm)
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

  /** the peer if known and seen at or after `seenSince` */
  getPeer (manifest: string, peerId: string, seenSince: number): PeerEntry | undefined {
    const peer = this.swarmMap.get(manifest)?.peers.get(peerId)
    return peer != null && peer.lastSeen >= seenSince ? peer : undefined
  }

  /**
   * seq of the last record accepted from the peer for the manifest: from its entry (live or
   * expired) or, after it left or expired, as remembered until the replay window closes
   */
  lastSeq (manifest: string, peerId: string, now: number): bigint | undefined {
    const peer = this.swarmMap.get(manifest)?.peers.get(peerId)
    if (peer != null) return peer.seq
    const r = this.remembered.get(key(manifest, peerId))
    return r != null && r.until >= now ? r.seq : undefined
  }

  /** remove a peer (event=stopped) and remember `seq` for the replay window */
  removePeer (manifest: string, peerId: string, seq: bigint, now: number): void {
    const swarm = this.swarmMap.get(manifest)
    const peer = swarm?.peers.get(peerId)
    if (swarm != null && peer != null) this.drop(manifest, swarm, peer, now, seq > peer.seq ? seq : peer.seq)
    // also for a peer we did not know: its stopped may have overtaken its started
    else this.remember(key(manifest, peerId), seq, now)
  }

  /** live peers of a swarm: seen at or after `seenSince` (expired ones may not be swept yet) */
  peers (manifest: string, seenSince: number): PeerEntry[] {
    const swarm = this.swarmMap.get(manifest)
    if (swarm == null) return []
    const out: PeerEntry[] = []
    for (const peer of swarm.peers.values()) {
      if (peer.lastSeen >= seenSince) out.push(peer)
    }
    return out
  }

  incrementCompleted (manifest: string): void {
    const swarm = this.swarmMap.get(manifest)
    // the logic counts a completion only after putPeer admitted the peer, so the swarm exists;
    // a counter for an unknown swarm would bypass maxManifests
    if (swarm != null) swarm.completed++
  }

  counts (manifest: string, seenSince: number): SwarmCounts {
    const swarm = this.swarmMap.get(manifest)
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

  /** manifests with peers, or without peers but with a completed counter still kept */
  manifests (): string[] {
    return [...this.swarmMap.keys()]
  }

  /** drop peers seen before `seenSince` and history past its time; returns how many peers */
  sweep (seenSince: number, now: number): number {
    let dropped = 0
    for (const [manifest, swarm] of this.swarmMap) {
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
    const overQuota = (): boolean => (this.swarmsOfPeer.get(peer.peerId) ?? 0) >= this.limits.maxSwarmsPerPeer || this.entriesOf(peer.host) >= this.limits.maxPeersPerIp
    // its own expired entries may be what holds the quota
    if (overQuota()) this.sweepFront(seenSince, now)
    if ((this.swarmsOfPeer.get(peer.peerId) ?? 0) >= this.limits.maxSwarmsPerPeer) {
      throw new QuotaExceededError(`peer is in too many swarms (max ${this.limits.maxSwarmsPerPeer})`)
    }
    if (this.entriesOf(peer.host) >= this.limits.maxPeersPerIp) {
      throw new QuotaExceededError(`too many peers announced from this address (max ${this.limits.maxPeersPerIp})`)
    }
    if (this.full(manifest) === undefined) return
    this.sweepFront(seenSince, now)
    // each round frees one place; a few rounds at most (one limit after another)
    for (let round = 0; round < 4; round++) {
      const reason = this.full(manifest)
      if (reason === undefined) return
      if (reason === 'swarms' && this.dropHistory()) continue
      if (this.evict(reason, manifest, peer.host, now)) continue
      if (reason === 'swarms') throw new TrackerFullError(`tracker is full (max ${this.limits.maxManifests} swarms)`)
      if (reason === 'swarm') throw new TrackerFullError(`swarm is full (max ${this.limits.maxPeersPerManifest} peers)`)
      throw new TrackerFullError(`tracker is full (max ${this.limits.maxPeersTotal} peers)`)
    }
    throw new TrackerFullError('tracker is full')
  }

  /** History yields to live swarms: drops the oldest counter of a swarm without peers, if any. */
  private dropHistory (): boolean {
    for (const m of this.idle.keys()) {
      this.idle.delete(m)
      this.swarmMap.delete(m)
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
      const swarm = this.swarmMap.get(manifest)
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
        const swarm = slot === undefined ? undefined : this.swarmMap.get(slot.manifest)
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
        const swarm = this.swarmMap.get(slot.manifest)
        const p = swarm?.peers.get(slot.peerId)
        if (swarm == null || p == null || swarm.peers.size > 1) continue
        this.drop(slot.manifest, swarm, p, now)
        // a swarm with a completed counter stays as history: that goes too, to free the place
        if (this.idle.delete(slot.manifest)) this.swarmMap.delete(slot.manifest)
        return true
      }
    }
    return false
  }

  /** Which limit one more peer of `manifest` would exceed. */
  private full (manifest: string): 'peers' | 'swarm' | 'swarms' | undefined {
    if (this.order.size >= this.limits.maxPeersTotal) return 'peers'
    const swarm = this.swarmMap.get(manifest)
    if (swarm != null) return swarm.peers.size >= this.limits.maxPeersPerManifest ? 'swarm' : undefined
    return this.swarmMap.size >= this.limits.maxManifests ? 'swarms' : undefined
  }

  /** Drop expired peers from the front of `order`: O(expired), cheap enough for every admission. */
  private sweepFront (seenSince: number, now: number): void {
    for (const slot of this.order.values()) {
      const swarm = this.swarmMap.get(slot.manifest)
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
      this.swarmMap.delete(manifest)
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
    this.remembered.set(k, { seq: prev != null && prev.seq > seq ? prev.seq : seq, until: now + this.limits.replayWindowMs })
    // bounded: past the cap the oldest memory goes first (its replay window is the shortest left)
    for (const oldest of this.remembered.keys()) {
      if (this.remembered.size <= this.limits.maxPeersTotal) break
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
      if (since + this.limits.historyTtlMs >= now) break
      this.idle.delete(manifest)
      this.swarmMap.delete(manifest)
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

export interface StoreLimits {
  maxPeersPerManifest: number
  maxManifests: number
  maxPeersTotal: number
  /** ms */
  replayWindowMs: number
  /** ms */
  historyTtlMs: number
  maxSwarmsPerPeer: number
  maxPeersPerIp: number
}

/** The limits of a store's init with their defaults, checked (every store checks them alike); durations in ms. */
export function storeLimits (init: MemoryPeerStoreInit): StoreLimits {
  return {
    maxPeersPerManifest: limit('maxPeersPerManifest', init.maxPeersPerManifest ?? DEFAULT_MAX_PEERS_PER_MANIFEST),
    maxManifests: limit('maxManifests', init.maxManifests ?? DEFAULT_MAX_MANIFESTS),
    maxPeersTotal: limit('maxPeersTotal', init.maxPeersTotal ?? DEFAULT_MAX_PEERS_TOTAL),
    replayWindowMs: seconds('replayWindow', init.replayWindow ?? DEFAULT_REPLAY_WINDOW) * 1000,
    historyTtlMs: seconds('historyTtl', init.historyTtl ?? DEFAULT_HISTORY_TTL) * 1000,
    maxSwarmsPerPeer: limit('maxSwarmsPerPeer', init.maxSwarmsPerPeer ?? DEFAULT_MAX_SWARMS_PER_PEER),
    maxPeersPerIp: limit('maxPeersPerIp', init.maxPeersPerIp ?? DEFAULT_MAX_PEERS_PER_IP)
  }
}

/** A store limit: a positive integer, else StoreConfigError. */
function limit (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new StoreConfigError(`${name} must be a positive integer`)
  return value
}

/** A store duration: a non-negative number of seconds, else StoreConfigError. */
function seconds (name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new StoreConfigError(`${name} must be a non-negative number of seconds`)
  return value
}
