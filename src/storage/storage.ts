import * as crypto from 'node:crypto'
import { createHash } from 'node:crypto'
import { constants as fsConstants, readSync, writeSync, writevSync, type Stats } from 'node:fs'
import { link, lstat, mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { pieceCount, pieceHash, pieceSize, type Manifest } from '../manifest/manifest.js'
import { reservedName, TEMP_PREFIX } from '../manifest/names.js'
import { InlineCalls } from './inline-calls.js'

export class StorageError extends Error { override name = 'StorageError' }

export interface PieceStore {
  readonly path: string // the final path of the file
  readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> // bounds-checked
  writePiece (piece: number, data: Uint8Array | Uint8Array[]): Promise<void> // whole piece, one positional write (writev for arrays)
  readPiece (piece: number): Promise<Uint8Array>
  /** Reads a whole piece into `into` (at least the piece's size); resolves to the piece's size. */
  readPieceInto (piece: number, into: Uint8Array): Promise<number>
  verifyPiece (piece: number): Promise<boolean> // read + SHA-256 against the manifest
  finalize (): Promise<void> // downloads: fsync, give the part file its final name (never replacing a file there); seeding: no-op
  /** downloads: the temporary file written until finalize(); undefined for seed stores and after finalize */
  readonly partPath: string | undefined
  /** Flushes written data to disk; returns the file's size and mtime, or a folder's parts digest (for the resume record). */
  sync (): Promise<PartState>
  close (): Promise<void> // idempotent
}

/** What sync() reports, and the resume record keeps, to tell later whether the part changed. */
export interface PartState {
  /** bytes of the file (a folder store: of the files it holds or wants, as if complete) */
  size: number
  /** its mtime (a folder store: the newest of its files) */
  mtimeMs: number
  /**
   * Folder downloads only: a digest of every part file's index, size, mtime and inode in the
   * staging folder (see folder-store.ts), which the resume record compares instead of size+mtime.
   */
  parts?: string
}

/**
 * The argument checks every PieceStore makes, one copy for all of them (the file store, the folder
 * stores and the in-memory store): each names the store's `path` and leaves the store as it was.
 */
export const storeChecks = {
  /** the size of `piece` (`sizeOf` gives it), or a StorageError if there is no such piece of `count` */
  piece (path: string, count: number, piece: number, sizeOf: (piece: number) => number): number {
    if (!Number.isInteger(piece) || piece < 0 || piece >= count) {
      throw new StorageError(`${path}: piece ${piece} out of range [0, ${count})`)
    }
    return sizeOf(piece)
  },
  block (path: string, piece: number, size: number, offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 1 || offset + length > size) {
      throw new StorageError(`${path}: block offset ${offset} length ${length} outside piece ${piece} of ${size} bytes`)
    }
  },
  into (path: string, piece: number, size: number, into: Uint8Array): void {
    if (into.byteLength < size) throw new StorageError(`${path}: a buffer of ${into.byteLength} bytes cannot hold piece ${piece} of ${size}`)
  },
  /** the total length of `chunks`, which must be the piece's size */
  write (path: string, piece: number, size: number, chunks: Uint8Array[]): number {
    const total = chunks.reduce((n, c) => n + c.byteLength, 0)
    if (total !== size) throw new StorageError(`${path}: piece ${piece} needs ${size} bytes, got ${total}`)
    return total
  }
}

/** A download store: a part file that may hold an earlier run's pieces. */
export interface DownloadStore extends PieceStore {
  /** an earlier run's part file was found and kept (its pieces still need checking) */
  readonly reusedPart: boolean
}

/**
 * A download is written to `<out>/.bitswarm-<cid>.part` until it is complete (its resume record
 * sits beside it). The temporary names come from the manifest's CID, never from its name: two
 * downloads into one directory cannot share or replace each other's part files, and a name of up
 * to NAME_MAX bytes still fits. Manifest names with this prefix are refused (see reservedName).
 */
export { TEMP_PREFIX, reservedName } from '../manifest/names.js'
export const PART_SUFFIX = '.part'
/** A folder download's staging folder: `<out>/.bitswarm-<cid>.parts/`, one part file per file. */
export const PARTS_SUFFIX = '.parts'

/** The part file of the download `key` (a manifest CID) in `outDir`. */
export function partPathOf (outDir: string, key: string): string {
  // the key becomes a file name: letters and digits only (a CID's base32 or base58 text)
  if (!/^[A-Za-z0-9]{1,200}$/.test(key)) throw new StorageError(`not a usable download key: ${JSON.stringify(key)}`)
  return join(outDir, `${TEMP_PREFIX}${key}${PART_SUFFIX}`)
}

/** The staging folder of the folder download `key` (a manifest CID) in `outDir`. */
export function stagingPathOf (outDir: string, key: string): string {
  return partPathOf(outDir, key).slice(0, -PART_SUFFIX.length) + PARTS_SUFFIX
}

/** crypto.hash, where this Node has it (20.12 and later) */
const oneShotHash: typeof crypto.hash | undefined = typeof crypto.hash === 'function' ? crypto.hash : undefined

/**
 * SHA-256 of a piece, on the main thread. WebCrypto's digest runs on libuv's thread pool, but it
 * first copies the piece (into freshly allocated memory, page faults and all): for 256 MiB in
 * 256 KiB pieces it cost 200–250 ms of CPU in all against 130 ms for OpenSSL here, and its main
 * thread share (~150 ms, the copy) was no smaller than hashing itself. Where cores are few and
 * every peer's processes share them (a swarm on one machine; a seed on a small box) the CPU in
 * all is what counts: the 1 → 1 leecher spent 6 % less, at the same speed.
 */
export async function sha256 (data: Uint8Array | Uint8Array[]): Promise<Uint8Array> {
  // one call, no Hash object (Node 20.12 and later): a folder's 10,000 small pieces are 10,000 hashes
  if (!Array.isArray(data) && oneShotHash !== undefined) return oneShotHash('sha256', data, 'buffer')
  const hash = createHash('sha256')
  for (const chunk of Array.isArray(data) ? data : [data]) hash.update(chunk)
  return new Uint8Array(hash.digest())
}

/** Does `data` hash to the manifest's SHA-256 for `piece`? */
export async function pieceMatches (manifest: Manifest, piece: number, data: Uint8Array): Promise<boolean> {
  return await hashMatches(pieceHash(manifest, piece), data)
}

/** Does `data` hash to `expected` (a SHA-256)? */
export async function hashMatches (expected: Uint8Array, data: Uint8Array): Promise<boolean> {
  return Buffer.compare(await sha256(data), expected) === 0
}

/** "ENOENT (no such file or directory)": the code for scripts, the words for people */
export function errno (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  if (e.code === undefined) return String(e.message ?? err)
  const words = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message
  return `${e.code} (${words})`
}

class FilePieceStore implements DownloadStore {
  readonly path: string
  readonly reusedPart: boolean
  private fh: FileHandle | undefined
  private readonly manifest: Manifest
  private readonly pieces: number
  private writable: boolean
  // download stores write here until finalize(); seed stores read `path` directly
  private readonly tempPath: string | undefined
  private finalized = false
  /** a downloaded piece is written inline while that takes microseconds (see InlineCalls) */
  private readonly inline = new InlineCalls()

  constructor (path: string, fh: FileHandle, manifest: Manifest, partPath: string | undefined, reusedPart = false) {
    this.path = path
    this.reusedPart = reusedPart
    this.fh = fh
    this.manifest = manifest
    this.pieces = pieceCount(manifest)
    this.tempPath = partPath
    this.writable = partPath !== undefined
  }

  private handle (): FileHandle {
    if (this.fh === undefined) throw new StorageError(`${this.path}: store is closed`)
    return this.fh
  }

  private checkPiece (piece: number): number {
    return storeChecks.piece(this.path, this.pieces, piece, (p) => pieceSize(this.manifest, p))
  }

  private async readAt (fh: FileHandle, position: number, length: number, buf: Uint8Array = new Uint8Array(length)): Promise<Uint8Array> {
    return await readFully(fh, this.tempPath ?? this.path, position, length, buf)
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    storeChecks.block(this.path, piece, size, offset, length)
    return await this.readAt(this.handle(), piece * this.manifest.pieceLength + offset, length)
  }

  async readPiece (piece: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    return await this.readAt(this.handle(), piece * this.manifest.pieceLength, size)
  }

  async readPieceInto (piece: number, into: Uint8Array): Promise<number> {
    const size = this.checkPiece(piece)
    storeChecks.into(this.path, piece, size, into)
    await this.readAt(this.handle(), piece * this.manifest.pieceLength, size, into)
    return size
  }

  async verifyPiece (piece: number): Promise<boolean> {
    return await pieceMatches(this.manifest, piece, await this.readPiece(piece))
  }

  async writePiece (piece: number, data: Uint8Array | Uint8Array[]): Promise<void> {
    const size = this.checkPiece(piece)
    // closed first: close() also makes the store read-only, and "closed" is what happened
    const fh = this.handle()
    if (!this.writable) throw new StorageError(`${this.path}: store is read-only`)
    const chunks = Array.isArray(data) ? data : [data]
    const total = storeChecks.write(this.path, piece, size, chunks)
    const name = this.tempPath ?? this.path
    const position = piece * this.manifest.pieceLength
    // into the page cache on the main thread: handed to the thread pool, each write woke a worker
    // that, on two cores, took the core from the main thread that woke it (the 1 → 1 leecher
    // 1.30 → 1.23 CPU-s, the 1 → 4 swarm 5.9 → 5.4 s); back to the pool if the disk is slow
    if (this.inline.on) {
      this.inline.run(() => { writeFullySync(fh.fd, name, position, chunks, total) })
      return
    }
    await writeFully(fh, name, position, chunks, total)
  }

  async finalize (): Promise<void> {
    if (this.tempPath === undefined || this.finalized) return
    const fh = this.handle()
    try {
      await fh.sync() // data on disk before the name says the file is complete
      // the open descriptor stays valid under the new name, so uploads in flight go on
      await placeFile(this.tempPath, this.path, await fh.stat())
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot finalize ${this.path}: ${errno(err)}`)
    }
    this.finalized = true
    // keep serving reads from the completed file: a finished download goes on seeding
    this.writable = false
  }

  get partPath (): string | undefined {
    return this.finalized ? undefined : this.tempPath
  }

  async sync (): Promise<PartState> {
    const fh = this.handle()
    try {
      if (this.writable) await fh.datasync()
      const st = await fh.stat()
      return { size: st.size, mtimeMs: st.mtimeMs }
    } catch (err) {
      throw new StorageError(`cannot sync ${this.tempPath ?? this.path}: ${errno(err)}`)
    }
  }

  async close (): Promise<void> {
    const fh = this.fh
    this.fh = undefined
    this.writable = false
    if (fh !== undefined) await fh.close().catch(() => {})
  }
}

/**
 * Reads `length` bytes at `position` into `buf`: positional reads may return short counts, so
 * loop until the range is filled. `name` (the file's path) goes in the errors.
 */
export async function readFully (fh: FileHandle, name: string, position: number, length: number, buf: Uint8Array = new Uint8Array(length)): Promise<Uint8Array> {
  let done = 0
  while (done < length) {
    let bytesRead: number
    try {
      ({ bytesRead } = await fh.read(buf, done, length - done, position + done))
    } catch (err) {
      throw new StorageError(`cannot read ${name}: ${errno(err)}`)
    }
    // the file was truncated under us: never hand out zero-filled data as if it were real
    if (bytesRead === 0) throw new StorageError(`${name}: unexpected end of file at ${position + done}`)
    done += bytesRead
  }
  return buf
}

/** Writes `chunks` (`total` bytes) at `position`: one positional write, writev for several. */
export async function writeFully (fh: FileHandle, name: string, position: number, chunks: Uint8Array[], total: number): Promise<void> {
  let done = 0
  try {
    while (done < total) {
      const { bytesWritten } = chunks.length === 1
        ? await fh.write(chunks[0], 0, chunks[0].length, position + done)
        : await fh.writev(chunks, position + done)
      if (bytesWritten === 0) throw new Error('wrote 0 bytes')
      done += bytesWritten
      // a short write (rare on regular files) leaves a tail: drop the written prefix and retry
      chunks = skipBytes(chunks, bytesWritten)
    }
  } catch (err) {
    throw new StorageError(`cannot write to ${name}: ${errno(err)}`)
  }
}

/** readFully, made inline (see InlineCalls): on a descriptor, for small reads. */
export function readFullySync (fd: number, name: string, position: number, length: number, buf: Uint8Array = new Uint8Array(length)): Uint8Array {
  let done = 0
  while (done < length) {
    let bytesRead: number
    try {
      bytesRead = readSync(fd, buf, done, length - done, position + done)
    } catch (err) {
      throw new StorageError(`cannot read ${name}: ${errno(err)}`)
    }
    if (bytesRead === 0) throw new StorageError(`${name}: unexpected end of file at ${position + done}`)
    done += bytesRead
  }
  return buf
}

/** writeFully, made inline (see InlineCalls): on a descriptor. */
export function writeFullySync (fd: number, name: string, position: number, chunks: Uint8Array[], total: number): void {
  let done = 0
  try {
    while (done < total) {
      const bytesWritten = chunks.length === 1
        ? writeSync(fd, chunks[0], 0, chunks[0].length, position + done)
        : writevSync(fd, chunks, position + done)
      if (bytesWritten === 0) throw new Error('wrote 0 bytes')
      done += bytesWritten
      chunks = skipBytes(chunks, bytesWritten)
    }
  } catch (err) {
    throw new StorageError(`cannot write to ${name}: ${errno(err)}`)
  }
}

export const sameFile = (a: Stats, b: Stats): boolean => a.dev === b.dev && a.ino === b.ino

// file systems without hard links (FAT, exFAT, some FUSE) say one of these to link(2)
export const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV'])

/**
 * Gives the finished part file its final name without replacing anything already there: link(2)
 * fails if the name exists, even as a dangling symlink, where rename(2) would replace it. Then
 * checks that the name holds the very file we wrote and verified (`own`, from our descriptor):
 * a part file swapped for another file under our feet gives an error, never a "complete".
 */
export async function placeFile (temp: string, final: string, own: Stats): Promise<void> {
  const appeared = (): StorageError => new StorageError(`cannot finalize ${final}: something by that name appeared during the download (the verified data is left in ${temp})`)
  try {
    await link(temp, final)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (code === 'EEXIST' || code === 'ENOENT') {
      // another run of this same download may have placed this same file already
      const there = await lstat(final).catch(() => undefined)
      if (there !== undefined && sameFile(there, own)) return
      if (code === 'EEXIST') throw appeared()
      throw err
    }
    if (!NO_HARD_LINKS.has(code)) throw err
    // no hard links here: check the name is free, then rename (a narrow race remains)
    if (await lstat(final).then(() => true, () => false)) throw appeared()
    await rename(temp, final)
  }
  const placed = await lstat(final)
  if (!sameFile(placed, own)) {
    // the part file's name pointed at another file: take back the name we just gave it
    await unlink(final).catch(() => {})
    throw new StorageError(`cannot finalize ${final}: ${temp} was replaced during the download by a file that was not verified`)
  }
  // drop the temporary name, but only if it is still ours
  const left = await lstat(temp).catch(() => undefined)
  if (left !== undefined && sameFile(left, own)) await unlink(temp).catch(() => {})
}

function skipBytes (chunks: Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const c of chunks) {
    if (n >= c.length) { n -= c.length; continue }
    out.push(n > 0 ? c.subarray(n) : c)
    n = 0
  }
  return out
}

// mkdir -p without { recursive: true }: Node 20's recursive mkdir loops forever when mkdir says
// ENOENT under an existing parent (e.g. /proc); here each level is retried once
export async function ensureDir (dir: string): Promise<void> {
  try {
    await mkdir(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return // the caller checks it is a directory
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err
    await ensureDir(dirname(dir))
    await mkdir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e })
  }
}

export async function openSeedStore (filePath: string, manifest: Manifest): Promise<PieceStore> {
  let fh: FileHandle
  try {
    fh = await open(filePath, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StorageError(`${filePath} is missing`)
    throw new StorageError(`cannot read ${filePath}: ${errno(err)}`)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new StorageError(`${filePath} is not a regular file`)
    if (st.size !== manifest.length) throw new StorageError(`${filePath} has ${st.size} bytes, manifest says ${manifest.length}`)
  } catch (err) {
    await fh.close().catch(() => {})
    if (err instanceof StorageError) throw err
    throw new StorageError(`cannot read ${filePath}: ${errno(err)}`)
  }
  return new FilePieceStore(filePath, fh, manifest, undefined)
}

/**
 * Opens the part file without following a symlink planted at its name (O_NOFOLLOW) and creates
 * a new one exclusively (O_EXCL). A symlink, a file with other hard links or another user's
 * file at our reserved name is not ours: its name is removed (never what it points at) and a
 * fresh file made.
 */
export async function openPartFile (path: string): Promise<{ fh: FileHandle, existed: boolean }> {
  const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fsConstants
  // most part files are new: try to make it first (O_EXCL fails on any name there, a symlink
  // included, without following it), and look at what is there only if that fails
  try {
    return { fh: await open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666), existed: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  for (let attempt = 0; attempt < 4; attempt++) {
    let fh: FileHandle | undefined
    try {
      // O_NONBLOCK: a FIFO planted here must not hang the open; regular files ignore it
      fh = await open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ELOOP') { await unlink(path); continue } // a symlink
      if (code !== 'ENOENT') throw err
    }
    if (fh !== undefined) {
      const st = await fh.stat().catch(async (err) => { await fh?.close(); throw err })
      if (!st.isFile()) {
        await fh.close()
        throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' })
      }
      // ours alone: not hard-linked to another name (writes would change that file too), not
      // owned by another user (who could go on writing into it after we verified it)
      if (st.nlink === 1 && (process.getuid === undefined || st.uid === process.getuid())) return { fh, existed: true }
      await fh.close()
      await unlink(path)
      continue
    }
    try {
      return { fh: await open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666), existed: false }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err // made in between: look again
    }
  }
  throw Object.assign(new Error(`${path} keeps being replaced`), { code: 'EBUSY' })
}

/** `key` names the temporary files: the manifest's CID (see partPathOf). */
export async function openDownloadStore (outDir: string, manifest: Manifest, key: string): Promise<DownloadStore> {
  // the name comes from a peer's manifest: never let it pick a path outside outDir
  if (manifest.name === '' || manifest.name === '.' || manifest.name === '..' || basename(manifest.name) !== manifest.name || /[/\\\0]/.test(manifest.name)) {
    throw new StorageError(`unsafe file name in manifest: ${JSON.stringify(manifest.name)}`)
  }
  if (reservedName(manifest.name)) {
    throw new StorageError(`file name in manifest is reserved for bitswarm's temporary files (${TEMP_PREFIX}…): ${JSON.stringify(manifest.name)}`)
  }
  const partPath = partPathOf(outDir, key)
  try {
    await ensureDir(outDir)
    if (!(await stat(outDir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
  } catch (err) {
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }
  const finalPath = join(outDir, manifest.name)
  // anything at the final name (a dangling symlink, a directory) would only fail at the end
  if (await lstat(finalPath).then(() => true, () => false)) throw new StorageError(`${finalPath} already exists: move it away first`)
  let opened: { fh: FileHandle, existed: boolean }
  try {
    // reuse a leftover part file (read-write keeps its bytes; not append: appends ignore the position)
    opened = await openPartFile(partPath)
  } catch (err) {
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }
  const { fh, existed } = opened
  try {
    // fixed size up front: pieces arrive in any order and land at their offsets (sparse file)
    if ((await fh.stat()).size !== manifest.length) await fh.truncate(manifest.length)
  } catch (err) {
    await fh.close().catch(() => {})
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }
  return new FilePieceStore(finalPath, fh, manifest, partPath, existed)
}
