/**
 * The swarm's counters: bytes moved either way (in all, by the source of the peer that sent
 * them, and as rates over a few seconds), and the SwarmStats snapshot built from them and from
 * what the sessions, the picker and the piece assembly know. No timers: the clock is injected.
 */
import type { Bitfield } from '../bitfield.js'
import { emptySources, type PeerSource } from '../discovery/types.js'
import { pieceCount, pieceSize, type Manifest } from '../manifest/manifest.js'
import { RateMeter } from '../stats/rate.js'
import type { PeerVia } from './sessions.js'

export interface SwarmStats {
  peers: number
  unchoking: number
  unchokedBy: number
  interested: number
  have: number
  pieces: number
  downloaded: number
  uploaded: number
  downloadRate: number
  uploadRate: number
  left: number
  wasted: number
  hashFailures: number
  /** connected peers by how we learned of them */
  sources: Record<PeerSource, number>
  /** connected peers by how we reach them */
  reached: Record<PeerVia, number>
  /** bytes downloaded, by how we learned of the peer that sent them */
  downloadedFrom: Record<PeerSource, number>
  /** peers banned for sending data that failed verification */
  banned: number
  /**
   * uploaded ÷ downloaded; for a peer that has downloaded nothing (a seed, or a download found
   * complete on disk), uploaded ÷ the bytes of the verified pieces it holds (0 when it holds none)
   */
  ratio: number
  /**
   * complete copies among the connected peers and ourselves (Transmission's and libtorrent's
   * "distributed copies", see distributedCopies)
   */
  distributedCopies: number
}

/** The stats line follows what happens now: rates over 5 s (the choker's are over 20 s). */
export const STATS_RATE_WINDOW_MS = 5_000

/** Bytes moved, in all and lately, and downloads by the source of the peer they came from. */
export class TransferCounters {
  downloaded = 0
  uploaded = 0
  private readonly from = emptySources()
  private readonly downRate: RateMeter
  private readonly upRate: RateMeter
  private readonly now: (() => number) | undefined
  /**
   * each session's rates over the same window (the session's own meters are the choker's, over
   * 20 s): the per-peer figures of peerInfo add up to the swarm's. Gone with the session.
   */
  private readonly perSession = new WeakMap<object, { down: RateMeter, up: RateMeter }>()

  constructor (init: { now?: () => number } = {}) {
    this.now = init.now
    this.downRate = new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: init.now })
    this.upRate = new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: init.now })
  }

  /**
   * `bytes` of block data arrived from a peer we learned of from `source` (wanted or not), over
   * `session` if given.
   */
  received (bytes: number, source: PeerSource, session?: object): void {
    this.downloaded += bytes
    this.from[source] += bytes
    this.downRate.add(bytes)
    if (session !== undefined) this.meters(session).down.add(bytes)
  }

  /** `bytes` of block data went out (over `session`, if given). */
  sent (bytes: number, session?: object): void {
    this.uploaded += bytes
    this.upRate.add(bytes)
    if (session !== undefined) this.meters(session).up.add(bytes)
  }

  /** Bytes/s from and to `session` over the stats window (0 for one that moved nothing). */
  ratesOf (session: object): { downloadRate: number, uploadRate: number } {
    const m = this.perSession.get(session)
    return m === undefined ? { downloadRate: 0, uploadRate: 0 } : { downloadRate: m.down.rate(), uploadRate: m.up.rate() }
  }

  private meters (session: object): { down: RateMeter, up: RateMeter } {
    let m = this.perSession.get(session)
    if (m === undefined) {
      m = { down: new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: this.now }), up: new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: this.now }) }
      this.perSession.set(session, m)
    }
    return m
  }

  get downloadRate (): number {
    return this.downRate.rate()
  }

  get uploadRate (): number {
    return this.upRate.rate()
  }

  /** Bytes downloaded by source (a copy). */
  downloadedFrom (): Record<PeerSource, number> {
    return { ...this.from }
  }
}

/** What a stats snapshot reads of a session (a PeerSession is one). */
export interface StatsSession {
  readonly amChoking: boolean
  readonly peerChoking: boolean
  readonly peerInterested: boolean
}

export interface SwarmStatsInput {
  transfer: TransferCounters
  sessions: Iterable<StatsSession>
  /** sessions by how we learned of their peer */
  sources: Record<PeerSource, number>
  /** sessions by how we reach their peer */
  reached?: Record<PeerVia, number>
  manifest: Manifest
  /** the verified pieces we hold */
  have: Bitfield
  /** the pieces we download (a selection of files); `have`, `pieces` and `left` count only these */
  wanted?: Bitfield
  /** the download is over: nothing is left */
  seeding: boolean
  /** each piece's size (default: the manifest's pieceSize, slower for a folder) */
  pieceSize?: (piece: number) => number
  /** blocks of no use and pieces that failed, and peers banned for it (the PieceAssembly) */
  assembly: { readonly wasted: number, readonly hashFailures: number, readonly banned: ReadonlySet<string> }
  /** how many connected peers have each piece (the picker's availability; default none) */
  availability?: (piece: number) => number
}

/** One SwarmStats snapshot. */
export function swarmStats (input: SwarmStatsInput): SwarmStats {
  let peers = 0
  let unchoking = 0
  let unchokedBy = 0
  let interested = 0
  for (const s of input.sessions) {
    peers++
    if (!s.amChoking) unchoking++
    if (!s.peerChoking) unchokedBy++
    if (s.peerInterested) interested++
  }
  const { transfer, have, manifest, wanted } = input
  const count = pieceCount(manifest)
  const sizeOf = input.pieceSize ?? ((piece: number) => pieceSize(manifest, piece))
  let left = 0
  let had = 0
  let pieces = 0
  let held = 0
  const copies = new Uint32Array(count)
  for (let i = 0; i < count; i++) {
    const ours = have.get(i)
    if (ours) held += sizeOf(i)
    copies[i] = (input.availability?.(i) ?? 0) + (ours ? 1 : 0)
    if (wanted !== undefined && !wanted.get(i)) continue
    pieces++
    if (ours) had++
    else if (!input.seeding) left += sizeOf(i)
  }
  // a peer that downloaded nothing (a seed) measures what it gave against what it holds
  const base = transfer.downloaded > 0 ? transfer.downloaded : held
  return {
    peers,
    unchoking,
    unchokedBy,
    interested,
    have: had,
    pieces,
    downloaded: transfer.downloaded,
    uploaded: transfer.uploaded,
    downloadRate: transfer.downloadRate,
    uploadRate: transfer.uploadRate,
    left,
    wasted: input.assembly.wasted,
    hashFailures: input.assembly.hashFailures,
    sources: input.sources,
    reached: input.reached ?? { direct: peers, relayed: 0, 'hole-punched': 0 },
    downloadedFrom: transfer.downloadedFrom(),
    banned: input.assembly.banned.size,
    ratio: base > 0 ? transfer.uploaded / base : 0,
    distributedCopies: distributedCopies(copies)
  }
}

/**
 * The complete copies of the content among the connected peers and ourselves, from how many of
 * them have each piece (`copies[i]`: the peers that have piece i, plus one if we do): the
 * rarest piece's count, plus the fraction of pieces that more than that many have. Transmission
 * shows it as "availability", libtorrent as distributed copies: 2.25 is two full copies and a
 * quarter of the pieces of a third. 0 for no pieces at all.
 */
export function distributedCopies (copies: ArrayLike<number>): number {
  const n = copies.length
  if (n === 0) return 0
  let min = Infinity
  for (let i = 0; i < n; i++) if (copies[i] < min) min = copies[i]
  let more = 0
  for (let i = 0; i < n; i++) if (copies[i] > min) more++
  return min + more / n
}

/** One connected peer as `Peer.peerInfos()` and the CLI's `peers` event show it. */
export interface PeerInfo {
  peerId: string
  /** the remote address of the session's connection, without `/p2p/<id>` ('' when unknown) */
  address: string
  /** how we learned of the peer */
  source: PeerSource
  /** how we reach it */
  via: PeerVia
  /** the share of the pieces it has, 0..1 (0 until it has said what it has) */
  progress: number
  /** bytes/s it sends us, and we send it, over the stats window (STATS_RATE_WINDOW_MS) */
  downloadRate: number
  uploadRate: number
  /** we choke it (it may not download from us) */
  amChoking: boolean
  /** we want pieces it has */
  amInterested: boolean
  /** it chokes us */
  peerChoking: boolean
  /** it wants pieces we have */
  peerInterested: boolean
  /** it holds the choker's optimistic unchoke now */
  optimistic: boolean
  /**
   * the choker counts it as snubbing us: we are interested, it unchokes us, and no block came
   * from it for the choker's snub timeout (60 s): it gets no regular upload slot
   */
  snubbed: boolean
}

/** What peerInfo reads of a session (a PeerSession is one). */
export interface InfoSession {
  readonly remotePeer: string
  readonly amChoking: boolean
  readonly amInterested: boolean
  readonly peerChoking: boolean
  readonly peerInterested: boolean
  /** the pieces it has (undefined: not said yet) */
  readonly peerHas: { count: () => number } | undefined
  readonly peerHasAll: boolean
}

/** A session's PeerInfo, from the session and what the swarm keeps beside it. */
export function peerInfo (s: InfoSession, facts: { address: string, source: PeerSource, via: PeerVia, pieces: number, rates: { downloadRate: number, uploadRate: number }, optimistic: boolean, snubbed: boolean }): PeerInfo {
  const has = s.peerHasAll ? facts.pieces : s.peerHas?.count() ?? 0
  const progress = facts.pieces === 0 ? (s.peerHas === undefined ? 0 : 1) : has / facts.pieces
  return {
    peerId: s.remotePeer,
    address: facts.address,
    source: facts.source,
    via: facts.via,
    progress: Math.round(progress * 10000) / 10000,
    downloadRate: Math.round(facts.rates.downloadRate),
    uploadRate: Math.round(facts.rates.uploadRate),
    amChoking: s.amChoking,
    amInterested: s.amInterested,
    peerChoking: s.peerChoking,
    peerInterested: s.peerInterested,
    optimistic: facts.optimistic,
    snubbed: facts.snubbed
  }
}
