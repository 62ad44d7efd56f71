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

  constructor (init: { now?: () => number } = {}) {
    this.downRate = new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: init.now })
    this.upRate = new RateMeter({ windowMs: STATS_RATE_WINDOW_MS, now: init.now })
  }

  /** `bytes` of block data arrived from a peer we learned of from `source` (wanted or not). */
  received (bytes: number, source: PeerSource): void {
    this.downloaded += bytes
    this.from[source] += bytes
    this.downRate.add(bytes)
  }

  /** `bytes` of block data went out. */
  sent (bytes: number): void {
    this.uploaded += bytes
    this.upRate.add(bytes)
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
  /** blocks of no use and pieces that failed, and peers banned for it (the PieceAssembly) */
  assembly: { readonly wasted: number, readonly hashFailures: number, readonly banned: ReadonlySet<string> }
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
  let left = 0
  let had = 0
  let pieces = 0
  for (let i = 0; i < count; i++) {
    if (wanted !== undefined && !wanted.get(i)) continue
    pieces++
    if (have.get(i)) had++
    else if (!input.seeding) left += pieceSize(manifest, i)
  }
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
    banned: input.assembly.banned.size
  }
}
