/**
 * A small read cache of whole pieces in front of a PieceStore. Peers ask for a piece block by
 * block (16 KiB at a time); reading the piece once and serving its blocks from memory turns
 * many small positional reads (each a thread-pool round trip) into one. Bounded by bytes.
 */
import type { PieceStore } from './storage.js'

export class PieceCache {
  private readonly store: PieceStore
  private readonly capacity: number
  private readonly entries = new Map<number, Promise<Uint8Array>>()

  /** `maxBytes / pieceLength` pieces are kept (none when a piece is larger than `maxBytes / 4`). */
  constructor (store: PieceStore, pieceLength: number, maxBytes = 8 * 1024 * 1024) {
    this.store = store
    this.capacity = pieceLength * 4 <= maxBytes ? Math.floor(maxBytes / pieceLength) : 0
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    if (this.capacity === 0) return await this.store.readBlock(piece, offset, length)
    let entry = this.entries.get(piece)
    if (entry == null) {
      entry = this.store.readPiece(piece)
      // a failed read is not cached: the next request tries the disk again
      entry.catch(() => { if (this.entries.get(piece) === entry) this.entries.delete(piece) })
      this.entries.set(piece, entry)
      if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as number)
    } else {
      // most recently used goes last
      this.entries.delete(piece)
      this.entries.set(piece, entry)
    }
    const data = await entry
    if (offset + length > data.byteLength) throw new RangeError(`block ${piece}/${offset}+${length} outside the piece`)
    return data.subarray(offset, offset + length)
  }

  clear (): void {
    this.entries.clear()
  }
}
