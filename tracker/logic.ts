/**
 * Announce and scrape on a PeerStore. Pure given `now` and `random`: no I/O, no timers, no clock.
 */
import { StaleRecordError } from './errors.js'
import type { PeerEntry, PeerStore, SwarmCounts } from './store.js'

export type TrackerEvent = 'started' | 'completed' | 'stopped'

/** A validated announce (see http.ts for parsing). Strings are already normalized. */
export interface AnnounceRequest {
  manifest: string
  peerId: string
  /** from the peer's signed record (see record.ts) */
  multiaddrs: string[]
  /** the signed record's seqNumber */
  seq: bigint
  event?: TrackerEvent
  uploaded: number
  downloaded: number
  left: number
  numwant: number
}

export interface AnnouncePeer { peerId: string, multiaddrs: string[] }

export interface AnnounceResponse {
  interval: number
  minInterval: number
  complete: number
  incomplete: number
  peers: AnnouncePeer[]
}

export interface ScrapeResponse { files: Record<string, SwarmCounts> }

export interface LogicOptions {
  /** seconds */
  interval: number
  /** seconds */
  minInterval: number
  /** seconds a peer lives without announcing */
  peerTtl: number
  random: () => number
}

/** Oldest lastSeen (ms) still alive at `now`. */
export function seenSince (now: number, peerTtl: number): number {
  return now - peerTtl * 1000
}

export function handleAnnounce (store: PeerStore, req: AnnounceRequest, now: number, opts: LogicOptions): AnnounceResponse {
  const since = seenSince(now, opts.peerTtl)
  let peers: AnnouncePeer[] = []

  // replay protection: a captured record (even of a stopped or expired peer) is worth nothing
  const last = store.lastSeq(req.manifest, req.peerId, now)
  if (last !== undefined && req.seq <= last) {
    throw new StaleRecordError(`record seq ${req.seq} is not newer than the last accepted (${last})`)
  }

  if (req.event === 'stopped') {
    store.removePeer(req.manifest, req.peerId, req.seq, now)
  } else {
    const prev = store.getPeer(req.manifest, req.peerId, since)
    // Count a peer's completion once: clients retry event=completed when an answer is lost.
    const countNow = req.event === 'completed' && prev?.countedComplete !== true
    // put first: it may refuse a new peer (limits), and then nothing else may change
    store.putPeer(req.manifest, {
      peerId: req.peerId,
      multiaddrs: req.multiaddrs,
      left: req.left,
      lastSeen: now,
      countedComplete: countNow || (prev?.countedComplete ?? false),
      seq: req.seq
    }, since)
    if (countNow) store.incrementCompleted(req.manifest)
    const candidates = store.peers(req.manifest, since)
      // nobody can dial a peer without addresses, so it is counted but not handed out
      .filter(p => p.peerId !== req.peerId && p.multiaddrs.length > 0)
    peers = sampleInPlace(candidates, req.numwant, opts.random).map(shown)
  }

  const counts = store.counts(req.manifest, since)
  return {
    interval: opts.interval,
    minInterval: opts.minInterval,
    complete: counts.complete,
    incomplete: counts.incomplete,
    peers
  }
}

/**
 * A peer as answers show it: one object per store entry (an announce replaces the entry), shared
 * by every answer that lists the peer, so its JSON can be made once too (see http.ts). Callers
 * must not mutate it.
 */
const shownEntries = new WeakMap<PeerEntry, AnnouncePeer>()

function shown (entry: PeerEntry): AnnouncePeer {
  let peer = shownEntries.get(entry)
  if (peer == null) {
    peer = { peerId: entry.peerId, multiaddrs: [...entry.multiaddrs] }
    shownEntries.set(entry, peer)
  }
  return peer
}

/**
 * `manifests` maps the key to answer under (what the client sent) to the normalized store key;
 * an empty list scrapes every known swarm.
 */
export function handleScrape (store: PeerStore, manifests: Array<{ key: string, manifest: string }>, now: number, peerTtl: number): ScrapeResponse {
  const since = seenSince(now, peerTtl)
  const wanted = manifests.length > 0
    ? manifests
    : store.manifests().map(m => ({ key: m, manifest: m }))
  // Object.fromEntries defines own properties, so a hostile key such as "__proto__" stays data
  return { files: Object.fromEntries(wanted.map(w => [w.key, store.counts(w.manifest, since)])) }
}

/** Up to `n` distinct items in random order (partial Fisher-Yates); `items` is left as it was. */
export function sample<T> (items: T[], n: number, random: () => number): T[] {
  return sampleInPlace([...items], n, random)
}

/** sample() that shuffles `arr` itself: for an array made just for this, no second copy. */
function sampleInPlace<T> (arr: T[], n: number, random: () => number): T[] {
  const k = Math.min(n, arr.length)
  for (let i = 0; i < k; i++) {
    // clamp: an injected random() returning 1 must not index past the end
    const j = Math.min(arr.length - 1, i + Math.floor(random() * (arr.length - i)))
    const tmp = arr[i]
    arr[i] = arr[j]
    arr[j] = tmp
  }
  return arr.slice(0, k)
}
