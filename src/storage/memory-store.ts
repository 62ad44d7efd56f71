/**
 * A PieceStore that keeps the file in memory: for tests, and for library users who do not want
 * the swarm to touch the disk. It behaves as the file store does (a StorageError for the same
 * mistakes, with the same messages; only a write after close says "closed" where the file store
 * says "read-only"), so the swarm cannot tell the two apart; the shared conformance suite in
 * test/storage/conformance.ts holds both to that.
 *
 * Memory is bounded by the manifest's length: a piece's buffer is allocated on its first write
 * (like a sparse file's blocks) and never more than once, so a download never holds more than the
 * file. A seed store copies the caller's bytes once. Nothing is kept after close().
 */
import { pieceCount, pieceSize, type Manifest } from '../manifest/manifest.js'
import { pieceMatches, StorageError, storeChecks, type DownloadStore, type PartState } from './storage.js'

export interface MemoryStoreOptions {
  /** The name in error messages and in `path` (default `memory:<manifest name>`): nothing is on disk. */
  path?: string
}

export class MemoryPieceStore implements DownloadStore {
  readonly path: string
  // nothing on disk carries over from an earlier run
  readonly reusedPart = false
  private readonly manifest: Manifest
  private readonly count: number
  /** by piece; undefined until written (reads as zeros, as a sparse file's holes do); undefined after close */
  private pieces: Array<Uint8Array | undefined> | undefined
  private writable: boolean
  private readonly download: boolean
  private finalized = false
  private mtimeMs = Date.now()

  private constructor (manifest: Manifest, pieces: Array<Uint8Array | undefined>, download: boolean, path: string | undefined) {
    this.manifest = manifest
    this.count = pieceCount(manifest)
    this.pieces = pieces
    this.download = download
    this.writable = download
    this.path = path ?? `memory:${manifest.name}`
  }

  /** An empty, writable store for a download of `manifest`. */
  static download (manifest: Manifest, options: MemoryStoreOptions = {}): MemoryPieceStore {
    checkShape(manifest)
    return new MemoryPieceStore(manifest, new Array<Uint8Array | undefined>(pieceCount(manifest)).fill(undefined), true, options.path)
  }

  /** A read-only store serving `data` (copied: the caller may reuse its buffer). */
  static seed (manifest: Manifest, data: Uint8Array, options: MemoryStoreOptions = {}): MemoryPieceStore {
    checkShape(manifest)
    const path = options.path ?? `memory:${manifest.name}`
    // the same refusal as openSeedStore: the pieces would not line up with the manifest
    if (data.byteLength !== manifest.length) throw new StorageError(`${path} has ${data.byteLength} bytes, manifest says ${manifest.length}`)
    const pieces: Uint8Array[] = []
    for (let p = 0; p < pieceCount(manifest); p++) {
      const start = p * manifest.pieceLength
      pieces.push(data.slice(start, start + pieceSize(manifest, p)))
    }
    return new MemoryPieceStore(manifest, pieces, false, path)
  }

  private held (): Array<Uint8Array | undefined> {
    if (this.pieces === undefined) throw new StorageError(`${this.path}: store is closed`)
    return this.pieces
  }

  private checkPiece (piece: number): number {
    return storeChecks.piece(this.path, this.count, piece, (p) => pieceSize(this.manifest, p))
  }

  // every read hands out a buffer of its own: callers may keep or change it without touching ours
  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    storeChecks.block(this.path, piece, size, offset, length)
    const held = this.held()[piece]
    return held === undefined ? new Uint8Array(length) : held.slice(offset, offset + length)
  }

  async readPiece (piece: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    const held = this.held()[piece]
    return held === undefined ? new Uint8Array(size) : held.slice()
  }

  async readPieceInto (piece: number, into: Uint8Array): Promise<number> {
    const size = this.checkPiece(piece)
    storeChecks.into(this.path, piece, size, into)
    const held = this.held()[piece]
    // only the piece's bytes are written: the rest of a reused buffer is left as it was
    if (held === undefined) into.fill(0, 0, size)
    else into.set(held)
    return size
  }

  async verifyPiece (piece: number): Promise<boolean> {
    return await pieceMatches(this.manifest, piece, await this.readPiece(piece))
  }

  async writePiece (piece: number, data: Uint8Array | Uint8Array[]): Promise<void> {
    const size = this.checkPiece(piece)
    // "closed" before "read-only": a closed store is not writable, but that is the clearer reason
    const pieces = this.held()
    if (!this.writable) throw new StorageError(`${this.path}: store is read-only`)
    const chunks = Array.isArray(data) ? data : [data]
    // checked before anything is copied: a rejected write leaves the piece as it was
    storeChecks.write(this.path, piece, size, chunks)
    // copied, never kept: the swarm reuses its piece buffers as soon as this resolves
    const into = pieces[piece] ?? new Uint8Array(size)
    let at = 0
    for (const c of chunks) { into.set(c, at); at += c.byteLength }
    pieces[piece] = into
    this.mtimeMs = Date.now()
  }

  async finalize (): Promise<void> {
    if (!this.download || this.finalized) return
    this.held() // a closed download cannot be finalized, as a file store's cannot
    this.finalized = true
    // a finished download goes on seeding: readable, no longer writable
    this.writable = false
  }

  /** Always undefined: there is no temporary file, so no resume record is written beside one. */
  get partPath (): string | undefined {
    return undefined
  }

  /** Nothing to flush; the size is the file's (as a preallocated part file's is). */
  async sync (): Promise<PartState> {
    this.held()
    return { size: this.manifest.length, mtimeMs: this.mtimeMs }
  }

  /** A copy of the whole file (holes as zeros): how a memory download's result is taken out. */
  toBytes (): Uint8Array {
    const pieces = this.held()
    const out = new Uint8Array(this.manifest.length)
    pieces.forEach((held, p) => { if (held !== undefined) out.set(held, p * this.manifest.pieceLength) })
    return out
  }

  async close (): Promise<void> {
    // dropping the pieces is what frees the memory; later calls say "closed"
    this.pieces = undefined
    this.writable = false
  }
}

// pieceCount and pieceSize would give nonsense (NaN, negative sizes) for a malformed manifest
function checkShape (m: Manifest): void {
  if (!Number.isSafeInteger(m.length) || m.length < 0 || !Number.isSafeInteger(m.pieceLength) || m.pieceLength < 1) {
    throw new StorageError(`unusable manifest: length ${m.length}, pieceLength ${m.pieceLength}`)
  }
}

/** An empty, writable in-memory store for a download of `manifest`. */
export function openMemoryDownloadStore (manifest: Manifest, options: MemoryStoreOptions = {}): MemoryPieceStore {
  return MemoryPieceStore.download(manifest, options)
}

/** A read-only in-memory store serving `data`, which must be `manifest.length` bytes. */
export function openMemorySeedStore (manifest: Manifest, data: Uint8Array, options: MemoryStoreOptions = {}): MemoryPieceStore {
  return MemoryPieceStore.seed(manifest, data, options)
}
