/**
 * Announce and scrape on a PeerStore: requests become store operations (the store makes each one
 * atomic), their results become answers. No clock and no timers of its own: `now` and `random` come in.
 */
import { hostOf, ownAddrs } from './addresses.js'
import type { PeerCandidate, PeerStore, SwarmCounts } from './store.js'
// one shape, one name: the tracker hands out what discovery hands the swarm
import type { PeerAddress } from '../src/discovery/types.js'
export type { PeerAddress }

export type TrackerEvent = 'started' | 'completed' | 'stopped'

/** A validated announce (see http.ts for parsing). Strings are already normalized. */
export interface AnnounceRequest {
  manifest: string
  peerId: string
  /** from the peer's signed record (see record.ts); only those on `ip` are listed */
  multiaddrs: string[]
  /** normalized IP the announce came from (see addresses.ts normalizeIp); '' if unknown */
  ip: string
  /** the signed record's seqNumber */
  seq: bigint
  event?: TrackerEvent
  uploaded: number
  downloaded: number
  left: number
  numwant: number
}


export interface AnnounceResponse {
  interval: number
  minInterval: number
  complete: number
  incomplete: number
  peers: PeerAddress[]
  /** the tracker's own relays, if it runs one (peers behind NATs may reserve a slot there) */
  relays?: readonly string[]
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
  /** the tracker's own relays (`tracker --relay`), with `/p2p/<id>`: handed out, and circuit addresses through them listed */
  relays?: readonly string[]
}

/** Oldest lastSeen (ms) still alive at `now`. */
export function seenSince (now: number, peerTtl: number): number {
  return now - peerTtl * 1000
}

export async function handleAnnounce (store: PeerStore, req: AnnounceRequest, now: number, opts: LogicOptions): Promise<AnnounceResponse> {
  // one store operation: the replay check, the update and the counts happen atomically there
  const { candidates, counts } = await store.announce({
    manifest: req.manifest,
    peerId: req.peerId,
    seq: req.seq,
    event: req.event,
    // a signature proves who announced, not whose addresses these are
    multiaddrs: ownAddrs(req.multiaddrs, req.ip, opts.relays),
    left: req.left,
    host: hostOf(req.ip),
    now,
    seenSince: seenSince(now, opts.peerTtl),
    numwant: req.numwant
  })
  return {
    interval: opts.interval,
    minInterval: opts.minInterval,
    complete: counts.complete,
    incomplete: counts.incomplete,
    peers: sampleByHost(candidates, req.numwant, opts.random).map(shown),
    ...(opts.relays != null && opts.relays.length > 0 ? { relays: opts.relays } : {})
  }
}

/**
 * A peer as answers show it: one object per store entry (an announce replaces the entry), shared
 * by every answer that lists the peer, so its JSON can be made once too (see http.ts). Callers
 * must not mutate it.
 */
const shownEntries = new WeakMap<PeerCandidate, PeerAddress>()

function shown (entry: PeerCandidate): PeerAddress {
  let peer = shownEntries.get(entry)
  if (peer == null) {
    peer = { peerId: entry.peerId, multiaddrs: [...entry.multiaddrs] }
    shownEntries.set(entry, peer)
  }
  return peer
}

/**
 * `manifests` maps the key to answer under (what the client sent) to the normalized store key.
 * Only what was asked: a full scrape would answer megabytes to a 60-byte request.
 */
export async function handleScrape (store: PeerStore, manifests: Array<{ key: string, manifest: string }>, now: number, peerTtl: number): Promise<ScrapeResponse> {
  const counts = await store.scrape(manifests.map(w => w.manifest), seenSince(now, peerTtl), now)
  // Object.fromEntries defines own properties, so a hostile key such as "__proto__" stays data
  return { files: Object.fromEntries(manifests.map((w, i) => [w.key, counts[i]])) }
}

/**
 * Up to `n` entries, spread over hosts: hosts in random order, one random entry of each per
 * round. A host that announced a thousand fake peers gets no bigger share of an answer than a
 * host with one honest seeder. `candidates` may be reordered.
 */
export function sampleByHost<T extends PeerCandidate> (candidates: T[], n: number, random: () => number): T[] {
  const byHost = new Map<string, T[]>()
  for (const c of candidates) {
    const list = byHost.get(c.host)
    if (list == null) byHost.set(c.host, [c])
    else list.push(c)
  }
  // one host, or one entry per host: a plain sample is already fair (and the common case)
  if (byHost.size <= 1 || byHost.size === candidates.length) return sampleInPlace(candidates, n, random)
  const hosts = sampleInPlace([...byHost.values()], byHost.size, random)
  const out: T[] = []
  for (let round = 0; out.length < n; round++) {
    let any = false
    for (const list of hosts) {
      if (round >= list.length) continue
      any = true
      // partial Fisher-Yates within the host's list
      const j = Math.min(list.length - 1, round + Math.floor(random() * (list.length - round)))
      const tmp = list[round]
      list[round] = list[j]
      list[j] = tmp
      out.push(list[round])
      if (out.length >= n) break
    }
    if (!any) break
  }
  return out
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
