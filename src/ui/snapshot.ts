/**
 * What the live page shows of one peer, and the compact form it travels in (one JSON object per
 * peer per stats interval, over server-sent events). Pure: no I/O, no clock.
 *
 * The piece map goes as base64 bitfields (BEP 3's layout: the high bit of the first byte is cell
 * 0) and one availability byte per cell. A torrent of more than MAX_CELLS pieces is binned: each
 * cell stands for `bin` consecutive pieces.
 */
import type { SwarmStats } from '../swarm/swarm.js'

/** One connected peer, as the peers table shows it (fields the peer cannot tell are left out). */
export interface UiPeer {
  peerId: string
  address?: string
  /** how we learned of it: tracker, dht, pex, bootstrap, cache, incoming */
  source?: string
  /** how we reach it: direct, relayed, hole-punched */
  via?: string
  /** 0..1: the share of the pieces it has */
  progress?: number
  /** bytes/s from it, and to it */
  downloadRate?: number
  uploadRate?: number
  amChoking?: boolean
  amInterested?: boolean
  peerChoking?: boolean
  peerInterested?: boolean
  optimistic?: boolean
  snubbed?: boolean
}

/** The piece map of one peer, binned to at most MAX_CELLS cells. */
export interface UiPieceMap {
  /** pieces in the torrent */
  pieces: number
  /** cells drawn */
  cells: number
  /** pieces per cell (1: a cell is a piece; the last cell may hold fewer) */
  bin: number
  /** base64 bitfield: cells of which we have every piece */
  have: string
  /** base64 bitfield: cells of which we have at least one piece (equal to `have` when bin is 1) */
  some: string
  /** base64 bitfield: cells with a piece being downloaded now */
  inFlight: string
  /** base64, one byte per cell: how many connected peers have it (its rarest piece; 255 at most); absent when unknown */
  availability?: string
}

/** One peer's state at one moment: what a column of the page draws. */
export interface UiSnapshot {
  /** the column's label (`seed`, `get`, or the demo's `leecher1`) */
  name: string
  /** ms since the epoch */
  t: number
  /** `manifest`, `downloading`, `seeding`, or `starting` (nothing to show yet) */
  phase: string
  cid?: string
  peerId?: string
  manifest?: { name: string, bytes: number, pieceLength: number, files?: number, fileNames?: string[] }
  stats?: SwarmStats
  map?: UiPieceMap
  /** the connected peers; absent when this peer cannot list them */
  peers?: UiPeer[]
}

/** Something the page can show: a peer in this process, or one the demo polls. */
export interface UiSource {
  readonly name: string
  /** now; undefined while there is nothing to show */
  snapshot: () => UiSnapshot | undefined
}

/** Cells drawn at most: a 2,048-cell map is a 64 × 32 grid; larger torrents are binned. */
export const MAX_CELLS = 2048
/** File names sent at most (a folder of 100,000 files would make every message megabytes). */
export const MAX_FILE_NAMES = 50

/** What a piece map is made from: per piece, held or not, being fetched or not, and how many peers have it. */
export interface PieceMapInput {
  pieces: number
  have: (piece: number) => boolean
  inFlight: Iterable<number>
  /** per piece; absent when not known */
  availability?: ArrayLike<number>
}

/** The piece map binned to at most `maxCells` cells. */
export function encodePieceMap (input: PieceMapInput, maxCells = MAX_CELLS): UiPieceMap {
  const pieces = Math.max(0, Math.floor(input.pieces))
  const bin = Math.max(1, Math.ceil(pieces / maxCells))
  const cells = Math.ceil(pieces / bin)
  const have = new Uint8Array(Math.ceil(cells / 8))
  const some = new Uint8Array(have.length)
  const inFlight = new Uint8Array(have.length)
  const avail = input.availability != null ? new Uint8Array(cells) : undefined
  const set = (bits: Uint8Array, cell: number): void => { bits[cell >> 3] |= 0x80 >> (cell & 7) }
  for (let c = 0; c < cells; c++) {
    const from = c * bin
    const to = Math.min(pieces, from + bin)
    let held = 0
    let rarest = Infinity
    for (let p = from; p < to; p++) {
      if (input.have(p)) held++
      if (input.availability != null) rarest = Math.min(rarest, Number(input.availability[p] ?? 0))
    }
    if (held === to - from) set(have, c)
    if (held > 0) set(some, c)
    if (avail != null) avail[c] = Math.max(0, Math.min(255, rarest === Infinity ? 0 : rarest))
  }
  for (const p of input.inFlight) {
    if (Number.isInteger(p) && p >= 0 && p < pieces) set(inFlight, Math.floor(p / bin))
  }
  return {
    pieces,
    cells,
    bin,
    have: base64(have),
    some: base64(some),
    inFlight: base64(inFlight),
    ...(avail != null ? { availability: base64(avail) } : {})
  }
}

function base64 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}
