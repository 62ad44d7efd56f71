/**
 * A small read cache of whole pieces in front of a PieceStore. Peers ask for a piece block by
 * block; reading the piece once and serving its blocks from memory turns several positional
 * reads (each a thread-pool round trip) into one. Bounded by bytes.
 *
 * The cache reads into a fixed set of piece-sized slots, allocated once and reused, and hands
 * out copies of blocks. A fresh buffer per piece read lived long enough (while peers fetched its
 * blocks) to reach V8's old generation, where only a full mark-compact frees it: a peer uploading
 * to several others spent a tenth or more of its CPU in such collections. The copies are
 * short-lived and die in the young generation.
 */
import type { PieceStore } from './storage.js'

interface Entry {
  slot: Uint8Array
  /** bytes of the piece in `slot` (the last piece is shorter) */
  size: number
  loaded: boolean
  /** readers waiting for the read: the slot is not reused until they have copied their block */
  pins: number
  ready: Promise<void>
}

export class PieceCache {
  private readonly store: PieceStore
  private readonly pieceLength: number
  private readonly pieceSize: ((piece: number) => number) | undefined
  private readonly capacity: number
  private allocated = 0
  private readonly free: Uint8Array[] = []
  /** by piece, least recently used first */
  private readonly entries = new Map<number, Entry>()

  /**
   * `maxBytes / pieceLength` pieces are kept (none when a piece is larger than `maxBytes / 4`).
   * With `pieceSize`, a block that is a whole piece is read on its own, not through the cache.
   */
  constructor (store: PieceStore, pieceLength: number, maxBytes = 8 * 1024 * 1024, pieceSize?: (piece: number) => number) {
    this.store = store
    this.pieceLength = pieceLength
    this.pieceSize = pieceSize
    this.capacity = pieceLength * 4 <= maxBytes ? Math.floor(maxBytes / pieceLength) : 0
  }

  /** The block's bytes, in a buffer of its own. */
  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    let entry = this.entries.get(piece)
    if (entry == null) {
      // a piece of one block (a folder's small files; pieces no larger than a block) is read
      // straight into the buffer handed out: caching it saves no read, and costs a copy
      if (offset === 0 && this.pieceSize?.(piece) === length) return await this.store.readBlock(piece, offset, length)
      const slot = this.capacity === 0 ? undefined : this.takeSlot()
      // every slot has readers waiting on it: read just the block
      if (slot == null) return await this.store.readBlock(piece, offset, length)
      entry = this.load(piece, slot)
    } else {
      // most recently used goes last
      this.entries.delete(piece)
      this.entries.set(piece, entry)
    }
    entry.pins++
    try {
      await entry.ready
    } finally {
      entry.pins--
    }
    // no await from here on: the slot cannot be reused before the copy is made
    if (offset + length > entry.size) throw new RangeError(`block ${piece}/${offset}+${length} outside the piece`)
    // not slice(): it zero-fills the copy first; every byte of this one is overwritten at once
    const copy = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length)
    copy.set(entry.slot.subarray(offset, offset + length))
    return copy
  }

  private load (piece: number, slot: Uint8Array): Entry {
    const entry: Entry = { slot, size: 0, loaded: false, pins: 0, ready: Promise.resolve() }
    entry.ready = this.store.readPieceInto(piece, slot).then((size) => {
      entry.size = size
      entry.loaded = true
    }, (err: unknown) => {
      // a failed read is not cached: the next request tries the disk again
      if (this.entries.get(piece) === entry) this.entries.delete(piece)
      this.free.push(slot)
      throw err
    })
    this.entries.set(piece, entry)
    return entry
  }

  /** A free slot, a new one while under capacity, or the least recently used idle one. */
  private takeSlot (): Uint8Array | undefined {
    const free = this.free.pop()
    if (free != null) return free
    if (this.allocated < this.capacity) {
      this.allocated++
      return new Uint8Array(this.pieceLength)
    }
    for (const [piece, entry] of this.entries) {
      if (entry.pins > 0 || !entry.loaded) continue
      this.entries.delete(piece)
      return entry.slot
    }
    return undefined
  }
}
