/**
 * Who to blame for a piece that failed its hash check (after libtorrent's "smart ban"). Blaming
 * every sender of a failed piece lets a peer frame an honest one: it sends one bad block of a
 * piece whose other blocks the honest peer sends, and both get the strike. Instead, when a piece
 * fails we remember a digest of each block and who sent it; once the piece verifies, the senders
 * whose blocks differ from the good data are the culprits, and the others are cleared. A peer
 * that sent every block of a failed piece alone needs no comparison: it is the culprit at once.
 * Pure: digests are computed by the caller; no I/O, no clock.
 */

/** One block of a failed piece: its index in the piece, who sent it, a digest of what it held. */
export interface SentBlock {
  block: number
  peer: string
  digest: string
}

export interface SmartBanInit {
  /** failed pieces remembered at most; the oldest record goes first (default 256) */
  maxPieces?: number
  /** (block, sender) digests remembered at most, over all pieces; oldest pieces go first (default 65_536) */
  maxEntries?: number
}

export class SmartBan {
  /** piece → block → sender → digest of what that sender gave, over every failed attempt */
  private readonly records = new Map<number, Map<number, Map<string, string>>>()
  private readonly maxPieces: number
  private readonly maxEntries: number
  /** (block, sender) digests held now */
  private entries = 0

  constructor (init: SmartBanInit = {}) {
    this.maxPieces = init.maxPieces ?? 256
    this.maxEntries = init.maxEntries ?? 65_536
  }

  /** Failed pieces whose culprits are not known yet. */
  get pending (): number {
    return this.records.size
  }

  /**
   * A piece failed its hash check. Returns the peers to blame now: the lone sender of the whole
   * piece, if there was one; otherwise nobody until the piece verifies (see `pieceVerified`).
   */
  pieceFailed (piece: number, blocks: SentBlock[]): string[] {
    const senders = new Set(blocks.map(b => b.peer))
    if (senders.size === 1) return [...senders]
    let record = this.records.get(piece)
    if (record === undefined) {
      record = new Map()
      this.records.set(piece, record)
    }
    for (const b of blocks) {
      let bySender = record.get(b.block)
      if (bySender === undefined) { bySender = new Map(); record.set(b.block, bySender) }
      if (!bySender.has(b.peer)) this.entries++
      bySender.set(b.peer, b.digest)
    }
    // bounded: a Map iterates in insertion order, so the first key is the oldest record (a
    // record never evicts itself: the newest failure is the one most worth resolving)
    while (this.records.size > 1 && (this.records.size > this.maxPieces || this.entries > this.maxEntries)) {
      this.drop(this.records.keys().next().value as number)
    }
    return []
  }

  private drop (piece: number): void {
    const record = this.records.get(piece)
    if (record === undefined) return
    for (const bySender of record.values()) this.entries -= bySender.size
    this.records.delete(piece)
  }

  /** Blocks of this piece whose good digest `pieceVerified` will ask for. */
  blocksToCompare (piece: number): number[] {
    return [...(this.records.get(piece)?.keys() ?? [])]
  }

  /**
   * The piece verified: `good(block)` is the digest of the verified data of that block. Returns
   * every peer that ever sent a block of this piece that differs from it (each once); a peer
   * whose blocks all matched is never among them. The record is dropped.
   */
  pieceVerified (piece: number, good: (block: number) => string): string[] {
    const record = this.records.get(piece)
    if (record === undefined) return []
    this.drop(piece)
    const culprits = new Set<string>()
    for (const [block, bySender] of record) {
      const want = good(block)
      for (const [peer, digest] of bySender) if (digest !== want) culprits.add(peer)
    }
    return [...culprits]
  }
}
