/**
 * Piece assembly: the blocks of each piece being downloaded are gathered in one buffer, with who
 * sent each. A complete piece is checked against the manifest's SHA-256 and written to the store;
 * one that fails is fetched again, and blame is laid as SmartBan says (a peer is struck only for
 * data it provably sent bad; enough strikes and it is banned). The swarm hands over every block
 * it receives and acts on the outcomes through an AssemblyDelegate (announce a piece, request
 * again, close a session). No sockets and no timers: the picker, the store and the delegate are
 * passed in, so tests drive it with a real picker and an in-memory store.
 */
import { createHash } from 'node:crypto'
import type { Uint8ArrayList } from 'uint8arraylist'
import { pieceSize, type Manifest } from '../manifest/manifest.js'
import { BLOCK_SIZE, type BlockReceivedResult, type PiecePicker } from '../picker/picker.js'
import { shortId } from '../session/session.js'
import { pieceMatches, type PieceStore } from '../storage/storage.js'
import { SmartBan, type SentBlock } from './smart-ban.js'

/** Piece buffers kept for reuse, in bytes (default). */
export const SPARE_BUFFER_BYTES = 16 * 1024 * 1024

/**
 * What the assembly needs of the picker: whether a block was asked for (and of whom), and what
 * became of a piece. The picker's own state must change at the moment it does today, before
 * blame is laid (closing a session hands its requests back to the picker at once).
 */
export type BlockLedger = Pick<PiecePicker, 'blockReceived' | 'pieceVerified' | 'pieceFailed'>

/** The outcomes the swarm acts on. */
export interface AssemblyDelegate {
  /**
   * `piece` is written and the picker has it: tell the peers, and finish if it was the last. A
   * rejection is reported through `error`, as a failed write is.
   */
  pieceVerified: (piece: number) => Promise<void> | void
  /** `piece` failed its check, the picker wants it again and blame is laid: request more. */
  pieceFailed: (piece: number) => void
  /** `peer` is banned for the rest of the run: stop passing its addresses on. */
  peerBanned: (peer: string) => void
  /** `peer` was struck for bad data: end its session with this reason. */
  closePeer: (peer: string, reason: string) => void
  /** writing or announcing a verified piece failed */
  error: (err: Error) => void
}

export interface PieceAssemblyInit {
  manifest: Manifest
  store: PieceStore
  picker: BlockLedger
  delegate: AssemblyDelegate
  /** each piece's size (default: the manifest's pieceSize) */
  pieceSize?: (piece: number) => number
  /** who sent the bad blocks of failed pieces (default a new one) */
  smartBan?: SmartBan
  /** bad pieces a peer may have had a hand in before it is banned (default 2) */
  maxStrikes?: number
  /** bytes of full-size piece buffers kept for reuse (default SPARE_BUFFER_BYTES; at least one is kept) */
  spareBufferBytes?: number
  log?: (msg: string) => void
}

export class PieceAssembly {
  private readonly manifest: Manifest
  private readonly store: PieceStore
  private readonly picker: BlockLedger
  private readonly pieceSize: (piece: number) => number
  private readonly delegate: AssemblyDelegate
  private readonly smartBan: SmartBan
  private readonly log: (msg: string) => void
  private readonly buffers = new Map<number, Uint8Array>()
  /** who sent each block of each piece being assembled (by block index): see SmartBan */
  private readonly blockSenders = new Map<number, string[]>()
  private readonly spareBuffers: Uint8Array[] = []
  /** spareBufferBytes of full-size piece buffers, and at least one whatever the piece length */
  private readonly maxSpareBuffers: number
  private readonly strikes = new Map<string, number>()
  private readonly bannedPeers = new Set<string>()
  private readonly maxStrikes: number
  /** pieces being hashed and written: settled() waits for them */
  private readonly verifying = new Set<Promise<void>>()
  private wastedBytes = 0
  private failedPieces = 0

  constructor (init: PieceAssemblyInit) {
    this.manifest = init.manifest
    this.store = init.store
    this.picker = init.picker
    this.pieceSize = init.pieceSize ?? ((piece) => pieceSize(init.manifest, piece))
    this.delegate = init.delegate
    this.smartBan = init.smartBan ?? new SmartBan()
    this.log = init.log ?? (() => {})
    this.maxStrikes = init.maxStrikes ?? 2
    this.maxSpareBuffers = Math.max(1, Math.floor((init.spareBufferBytes ?? SPARE_BUFFER_BYTES) / init.manifest.pieceLength))
  }

  /** Bytes received that were of no use: blocks nobody wanted (endgame duplicates, late ones) and pieces that failed. */
  get wasted (): number {
    return this.wastedBytes
  }

  /** Pieces that failed their hash check. */
  get hashFailures (): number {
    return this.failedPieces
  }

  /** Peers banned for sending data that failed verification (for the rest of the run). */
  get banned (): ReadonlySet<string> {
    return this.bannedPeers
  }

  /** Pieces holding a buffer now: being assembled, or being checked and written. */
  get assembling (): number {
    return this.buffers.size
  }

  /** Full-size buffers kept for the next pieces. */
  get spares (): number {
    return this.spareBuffers.length
  }

  /**
   * A block arrived from `peer`. The picker says whether it was wanted (asked of this peer and
   * not received yet); one that was not is counted as wasted and dropped. Returns the picker's
   * verdict: the caller sends its cancels, then `check()`s the piece once it is complete.
   */
  receive (peer: string, piece: number, offset: number, data: Uint8ArrayList): BlockReceivedResult {
    const r = this.picker.blockReceived(peer, piece, offset)
    if (!r.accepted) {
      this.wastedBytes += data.byteLength
      return r
    }
    let buf = this.buffers.get(piece)
    let senders = this.blockSenders.get(piece)
    if (buf == null || senders == null) {
      buf = this.takeBuffer(this.pieceSize(piece))
      this.buffers.set(piece, buf)
      senders = new Array<string>(Math.ceil(buf.byteLength / BLOCK_SIZE))
      this.blockSenders.set(piece, senders)
    }
    let at = offset
    for (const chunk of data) { buf.set(chunk, at); at += chunk.byteLength }
    senders[offset / BLOCK_SIZE] = peer
    return r
  }

  /**
   * Checks a piece whose every block has arrived (the picker said `pieceComplete`), then writes
   * it or lays blame. Never rejects: errors go to the delegate. Nothing to do for a piece that
   * holds no buffer (already written or failed).
   */
  async check (piece: number): Promise<void> {
    const buf = this.buffers.get(piece)
    if (buf === undefined) return
    const v = this.verify(piece, buf)
    this.verifying.add(v)
    void v.finally(() => this.verifying.delete(v))
    await v
  }

  /** Resolves once every piece being checked now is written or failed. */
  async settled (): Promise<void> {
    await Promise.allSettled([...this.verifying])
  }

  /**
   * A buffer for a piece being assembled. Full-size ones are reused once their piece is written:
   * a fresh 256 KiB buffer per piece (zero-filled, then collected) was a good part of a
   * downloader's garbage. No byte of a reused buffer is read before a block overwrites it: a
   * piece is hashed only when every block has arrived.
   */
  private takeBuffer (size: number): Uint8Array {
    if (size === this.manifest.pieceLength) {
      const spare = this.spareBuffers.pop()
      if (spare !== undefined) return spare
    }
    return new Uint8Array(size)
  }

  private giveBuffer (buf: Uint8Array): void {
    if (buf.byteLength === this.manifest.pieceLength && this.spareBuffers.length < this.maxSpareBuffers) this.spareBuffers.push(buf)
  }

  /** A piece is verified by SHA-256 before it is stored, announced with `have`, or uploaded. */
  private async verify (piece: number, buf: Uint8Array): Promise<void> {
    try {
      const matches = await pieceMatches(this.manifest, piece, buf)
      const senders = this.blockSenders.get(piece) ?? []
      this.blockSenders.delete(piece)
      if (!matches) {
        this.failedPieces++
        this.wastedBytes += buf.byteLength
        // who sent what, before the buffer is reused: the culprits are known once it verifies
        const sent: SentBlock[] = []
        for (let b = 0; b < senders.length; b++) {
          const peer = senders[b]
          if (peer !== undefined) sent.push({ block: b, peer, digest: blockDigest(buf, b) })
        }
        this.buffers.delete(piece)
        this.giveBuffer(buf)
        // before any strike: a session closed for it hands its requests back to a picker that
        // already wants the piece again
        this.picker.pieceFailed(piece)
        const lone = this.smartBan.pieceFailed(piece, sent)
        const who = [...new Set(sent.map(x => x.peer))].map(shortId).join(', ')
        this.log(`piece ${piece} failed its hash check (blocks from ${who}); fetching it again${lone.length === 0 ? ' from one peer, to find whose blocks were bad' : ''}`)
        for (const peer of lone) this.strike(peer, `sent all of piece ${piece}, which failed verification`)
        this.delegate.pieceFailed(piece)
        return
      }
      // blocks of this piece that failed before: whoever sent one that differs was the culprit
      for (const peer of this.smartBan.pieceVerified(piece, (b) => blockDigest(buf, b))) {
        this.strike(peer, `sent a bad block of piece ${piece}`)
      }
      await this.store.writePiece(piece, buf)
      this.buffers.delete(piece)
      this.giveBuffer(buf)
      this.picker.pieceVerified(piece)
      await this.delegate.pieceVerified(piece)
    } catch (err) {
      this.delegate.error(err as Error)
    }
  }

  /**
   * A peer proven to have sent bad data (see SmartBan: never one whose blocks matched) gets a
   * strike and is cut off; with `maxStrikes` strikes it is banned for the rest of the run.
   */
  private strike (peer: string, why: string): void {
    const strikes = (this.strikes.get(peer) ?? 0) + 1
    this.strikes.set(peer, strikes)
    if (strikes >= this.maxStrikes && !this.bannedPeers.has(peer)) {
      this.bannedPeers.add(peer)
      this.delegate.peerBanned(peer)
      this.log(`banning ${shortId(peer)}: ${strikes} pieces with bad data (last: ${why})`)
    }
    this.delegate.closePeer(peer, strikes >= this.maxStrikes ? `banned: ${why}` : why)
  }
}

/** A digest of one block of a piece buffer, to tell whose block was bad (SmartBan). */
function blockDigest (buf: Uint8Array, block: number): string {
  const start = block * BLOCK_SIZE
  // 128 bits of SHA-256: a peer cannot make a bad block match a good one's digest
  return createHash('sha256').update(buf.subarray(start, Math.min(buf.byteLength, start + BLOCK_SIZE))).digest().toString('base64', 0, 16)
}
