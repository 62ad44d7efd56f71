/**
 * Announce and scrape on a PeerStore. Pure given `now` and `random`: no I/O, no timers, no clock.
 */
import type { PeerStore, SwarmCounts } from './store.js'

export type TrackerEvent = 'started' | 'completed' | 'stopped'

/** A validated announce (see http.ts for parsing). Strings are already normalized. */
export interface AnnounceRequest {
  manifest: string
  peerId: string
  multiaddrs: string[]
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

  if (req.event === 'stopped') {
    store.removePeer(req.manifest, req.peerId)
  } else {
    const prev = store.getPeer(req.manifest, req.peerId, since)
    let countedComplete = prev?.countedComplete ?? false
    // Count a peer's completion once: clients retry event=completed when an answer is lost.
    if (req.event === 'completed' && !countedComplete) {
      store.incrementCompleted(req.manifest)
      countedComplete = true
    }
    store.putPeer(req.manifest, {
      peerId: req.peerId,
      multiaddrs: req.multiaddrs,
      left: req.left,
      lastSeen: now,
      countedComplete
    })
    const candidates = store.peers(req.manifest, since)
      // nobody can dial a peer without addresses, so it is counted but not handed out
      .filter(p => p.peerId !== req.peerId && p.multiaddrs.length > 0)
    peers = sample(candidates, req.numwant, opts.random)
      .map(p => ({ peerId: p.peerId, multiaddrs: [...p.multiaddrs] }))
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

/** Up to `n` distinct items in random order (partial Fisher-Yates). */
export function sample<T> (items: T[], n: number, random: () => number): T[] {
  const arr = [...items]
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
