/**
 * A folder on disk as a PieceStore: the files of a folder manifest, each starting on a piece
 * boundary (manifest/layout.ts), so every piece lies in exactly one file and is read from or
 * written to that file alone.
 *
 * Seeding reads `<dir>/<path…>`. A download writes nothing at the final names until finalize():
 *
 *   <out>/.bitswarm-<cid>.parts/          the staging folder (mode 0700), ours alone
 *   <out>/.bitswarm-<cid>.parts/<index>   one part file per file of the manifest, made on its
 *                                         first write, sparse, at the file's full size
 *   <out>/.bitswarm-<cid>.resume          the resume record (resume.ts), beside it
 *   <out>/<name>/<path…>                  where finalize() puts each selected file: a hard link
 *                                         (never replacing anything), then the part name goes
 *
 * Writes never leave `out`. Node has no openat(), so every folder under `out` that we enter or
 * make is lstat()ed first: a symlink at a user-visible name (`<out>/<name>`, a folder on the way,
 * a final file name) is refused with a StorageError naming it, and never followed; a symlink in
 * our reserved names (the staging folder, a part file) is removed (the link, not what it points
 * at) and replaced by a folder or file of our own. Part files are opened O_NOFOLLOW, created
 * O_CREAT|O_EXCL, and checked against the inode we made before every reopen and at finalize.
 * What remains is the race no path-based API can close: a folder swapped for a link between our
 * lstat() and the next call, by someone who can write into `out` at that very moment.
 *
 * A selection (file indexes) limits what is written and placed: pieces of other files are refused,
 * and their names never appear. Part files of files not selected now (an earlier run's) are kept
 * in the staging folder for a later run, which is then removed only once empty. Existing files at
 * selected final names (an earlier selection's) are merged with, read-only, never replaced.
 *
 * File handles are opened lazily and kept in a small LRU (a folder may hold 100,000 files).
 */
import { createHash } from 'node:crypto'
import { constants as fsConstants, type Stats } from 'node:fs'
import { lstat, mkdir, open, readdir, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Bitfield } from '../bitfield.js'
import type { FileSpan, Layout } from '../manifest/layout.js'
import { manifestLayout, pieceHash, type FolderManifest } from '../manifest/manifest.js'
import {
  ensureDir, errno, hashMatches, openPartFile, placeFile, readFully, reservedName, sameFile, stagingPathOf,
  StorageError, storeChecks, TEMP_PREFIX, writeFully, type DownloadStore, type PartState
} from './storage.js'

/** What a folder store needs of a manifest, without depending on the manifest's shape. */
export interface FolderSpec {
  /** the folder's name: a download lands in `<out>/<name>/` */
  name: string
  layout: Layout
  /** the manifest's SHA-256 of `piece` */
  pieceHash: (piece: number) => Uint8Array
  /** the manifest's empty folders, as path components (other folders are implied by files) */
  emptyFolders?: ReadonlyArray<readonly string[]>
}

/** A folder manifest as a FolderSpec: its layout, piece hashes and empty folders. */
export function folderSpecOf (manifest: FolderManifest): FolderSpec {
  return { name: manifest.name, layout: manifestLayout(manifest), pieceHash: (p) => pieceHash(manifest, p), emptyFolders: manifest.folders }
}

export interface FolderStoreOptions {
  /**
   * The files (indexes into layout.files) this store holds or fetches; default all. A seed store
   * opens only these (a partial seeder); a download store writes and places only these.
   */
  selected?: Iterable<number>
  /** File handles kept open at most (default 64), besides those in use at that moment. */
  maxOpenFiles?: number
}

export interface FolderDownloadOptions extends FolderStoreOptions {
  /**
   * The empty folders finalize() makes. Default: all of the spec's without a selection, none with
   * one (which empty folders a selection takes is the caller's rule, e.g. its globs).
   */
  emptyFolders?: ReadonlyArray<readonly string[]>
}

export interface FolderStore extends DownloadStore {
  /** a seed store: the folder; a download: `<out>/<name>` */
  readonly path: string
  readonly layout: Layout
  /** the selected file indexes (all of them without a selection) */
  readonly selected: ReadonlySet<number>
  /**
   * Downloads: selected files found at their final names when the store was opened (placed by an
   * earlier run, or put there by the user), of the right size. They are read, never written: the
   * caller verifies their pieces (as reusedPart asks) and should refuse the download if one fails,
   * since writePiece of their pieces is refused.
   */
  readonly existingFiles: ReadonlySet<number>
}

/** The pieces of the selected files (all pieces without a selection): what the picker should fetch. */
export function wantedPieces (layout: Layout, selected?: Iterable<number>): Bitfield {
  if (selected === undefined) return Bitfield.full(layout.pieceCount)
  const wanted = new Bitfield(layout.pieceCount)
  for (const i of selected) {
    const span = layout.files[i]
    if (span === undefined) throw new RangeError(`file ${i} out of range [0, ${layout.files.length})`)
    for (let p = span.firstPiece; p < span.firstPiece + span.pieceCount; p++) wanted.set(p)
  }
  return wanted
}

const DEFAULT_MAX_OPEN_FILES = 64
/** file-system calls in flight at once when a pass touches every file (stat, fsync, link) */
const FS_CONCURRENCY = 16
/** a part file's name in the staging folder: the file's index, in decimal */
const PART_NAME = /^(0|[1-9][0-9]{0,8})$/

/** Who a file is (its inode) and how it was when last looked at. */
interface Stamp { dev: number, ino: number, size: number, mtimeMs: number }
const stampOf = (st: Stats): Stamp => ({ dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs })
const isStamp = (st: Stats, s: Stamp): boolean => st.dev === s.dev && st.ino === s.ino

/** Where a file's bytes are. */
type Where =
  /** nowhere yet: a download reads it as zeros (a hole); a seed store does not hold it */
  | { at: 'nowhere' }
  /** in its part file `<staging>/<index>`, the very inode we made or kept */
  | { at: 'part', stamp: Stamp }
  /** at its final name: placed by us (`stamp`, checked on every reopen), or found there */
  | { at: 'final', stamp: Stamp | undefined, mtimeMs: number }

interface FileState {
  span: FileSpan
  where: Where
  /** written since the last sync(): its stamp in the resume digest is out of date */
  dirty: boolean
  /** its data may not be on disk yet (written, or kept from an earlier run, and not fsynced) */
  unflushed: boolean
}

/** The folders from `root` down to the one holding `path` (root included). */
function foldersOn (root: string, path: readonly string[]): string[] {
  const dirs = [root]
  for (const c of path.slice(0, -1)) dirs.push(join(dirs[dirs.length - 1], c))
  return dirs
}

/** "a/b/c.txt", for messages */
const showPath = (path: readonly string[]): string => path.join('/')

/** ENOENT and ENOTDIR both mean "nothing there" to a lookup */
const absent = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

async function lstatOrUndefined (path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path)
  } catch (err) {
    if (absent(err)) return undefined
    throw err
  }
}

/** Runs `fn` over `items`, `limit` at once; after a failure starts no more, waits for the rest, throws the first. */
async function forEachLimit<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed = false
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++])
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker))
  for (const s of settled) if (s.status === 'rejected') throw s.reason
}

const ownUid = (): number | undefined => process.getuid?.()

/**
 * The digest of a staging folder's part files, each as index, size, mtime and inode: what a
 * folder's resume record keeps in place of a single part file's size and mtime. The store and
 * stagingDigest compute it the same way, from fstat and lstat of the same files.
 */
function digestOf (parts: Array<{ index: number, stamp: Stamp }>): string {
  const hash = createHash('sha256')
  for (const { index, stamp } of parts.sort((a, b) => a.index - b.index)) {
    hash.update(`${index} ${stamp.size} ${stamp.mtimeMs} ${stamp.ino}\n`)
  }
  return hash.digest('hex')
}

/**
 * The digest of the part files in the staging folder `dir` as they are on disk now, or undefined
 * if `dir` is not a real folder or holds something other than regular files at part names (the
 * store removes those when it opens, so a record can only match a cleaned-up folder).
 */
export async function stagingDigest (dir: string): Promise<string | undefined> {
  const st = await lstatOrUndefined(dir)
  if (st === undefined || !st.isDirectory()) return undefined
  const names = (await readdir(dir)).filter(name => PART_NAME.test(name))
  const parts: Array<{ index: number, stamp: Stamp }> = []
  let odd = false
  await forEachLimit(names, FS_CONCURRENCY, async (name) => {
    const part = await lstatOrUndefined(join(dir, name))
    if (part === undefined) return
    if (!part.isFile()) odd = true
    else parts.push({ index: Number(name), stamp: stampOf(part) })
  })
  return odd ? undefined : digestOf(parts)
}

/**
 * Open file handles by file index, least recently used first, at most `max` of them idle: one is
 * closed only when no read or write is using it (FileHandle.close() would wait for them anyway,
 * but a handle taken and not yet used must not be closed under its user).
 */
class Handles {
  private readonly slots = new Map<number, { handle: Promise<FileHandle>, users: number }>()
  private closed = false

  constructor (private readonly max: number, private readonly name: string) {}

  async use<T> (key: number, opener: () => Promise<FileHandle>, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError(`${this.name}: store is closed`)
    let slot = this.slots.get(key)
    if (slot === undefined) {
      const made = { handle: opener(), users: 0 }
      // a failed open is not kept: the next use tries again
      made.handle.catch(() => { if (this.slots.get(key) === made) this.slots.delete(key) })
      slot = made
    } else {
      this.slots.delete(key)
    }
    this.slots.set(key, slot) // most recently used goes last
    slot.users++ // before trimming: the slot in hand is never the one closed
    this.trim()
    try {
      return await fn(await slot.handle)
    } finally {
      slot.users--
      this.trim()
    }
  }

  private trim (): void {
    if (this.slots.size <= this.max) return
    for (const [key, slot] of this.slots) {
      if (this.slots.size <= this.max) break
      if (slot.users > 0) continue
      this.slots.delete(key)
      void slot.handle.then(async (fh) => { await fh.close() }).catch(() => {})
    }
  }

  async closeAll (): Promise<void> {
    this.closed = true
    const slots = [...this.slots.values()]
    this.slots.clear()
    // FileHandle.close() waits for reads and writes under way: they finish, or fail as closed
    await Promise.all(slots.map(async (s) => { await s.handle.then(async (fh) => { await fh.close() }).catch(() => {}) }))
  }
}

/** The reason a path component from a manifest cannot name a file here, or undefined. */
function componentProblem (c: unknown): string | undefined {
  if (typeof c !== 'string' || c === '' || c === '.' || c === '..' || /[/\\\0]/.test(c)) return `unsafe name ${JSON.stringify(c)}`
  return undefined
}

/** The manifest's paths come from a peer: refuse one that could leave the folder, even if validation let it through. */
function checkSpec (spec: FolderSpec): void {
  const err = componentProblem(spec.name)
  if (err !== undefined || basename(spec.name) !== spec.name) throw new StorageError(`unsafe folder name in manifest: ${JSON.stringify(spec.name)}`)
  const paths = [...spec.layout.files.map(f => f.path), ...(spec.emptyFolders ?? [])]
  for (const path of paths) {
    if (path.length === 0) throw new StorageError(`${spec.name}: an empty path in the manifest`)
    for (const c of path) {
      const problem = componentProblem(c)
      if (problem !== undefined) throw new StorageError(`${spec.name}: ${problem} in the path ${JSON.stringify(showPath(path))}`)
    }
  }
}

function selectionOf (layout: Layout, selected: Iterable<number> | undefined): Set<number> {
  if (selected === undefined) return new Set(layout.files.map(f => f.index))
  const set = new Set<number>()
  for (const i of selected) {
    if (!Number.isInteger(i) || i < 0 || i >= layout.files.length) throw new StorageError(`no file ${i} to select: the manifest has ${layout.files.length}`)
    set.add(i)
  }
  return set
}

const linkError = (path: string): StorageError =>
  new StorageError(`${path} is a symbolic link: bitswarm never writes through one (remove it, or download elsewhere)`)

/**
 * Folders under a download's root, checked one component at a time with lstat(): a symlink or a
 * non-folder on the way is a StorageError naming it. Remembers what it saw for one pass.
 */
class FolderWalk {
  /** path → a real folder (true) or missing (false) */
  private readonly known = new Map<string, boolean>()

  /** Is `dir` a real folder (true) or missing (false)? */
  async probe (dir: string): Promise<boolean> {
    const seen = this.known.get(dir)
    if (seen !== undefined) return seen
    const st = await lstatOrUndefined(dir)
    if (st?.isSymbolicLink() === true) throw linkError(dir)
    if (st !== undefined && !st.isDirectory()) throw new StorageError(`${dir} is in the way: a folder of the download goes there (move it away first)`)
    this.known.set(dir, st !== undefined)
    return st !== undefined
  }

  /** Do all of `dirs` (a path from the root down) exist as real folders? Stops at the first missing one. */
  async probeAll (dirs: readonly string[]): Promise<boolean> {
    for (const dir of dirs) if (!(await this.probe(dir))) return false
    return true
  }

  /** Makes each of `dirs` (from the root down) that is missing; never through a link. */
  async make (dirs: readonly string[]): Promise<void> {
    for (const dir of dirs) {
      if (this.known.get(dir) === true) continue
      try {
        await mkdir(dir) // mkdir(2) never follows a link at its last component: it says EEXIST
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(`cannot make the folder ${dir}: ${errno(err)}`)
      }
      this.known.delete(dir)
      if (!(await this.probe(dir))) throw new StorageError(`cannot make the folder ${dir}: it vanished`)
    }
  }
}

class FolderPieceStore implements FolderStore {
  readonly path: string
  readonly layout: Layout
  readonly selected: ReadonlySet<number>
  readonly existingFiles: ReadonlySet<number>
  readonly reusedPart: boolean
  private readonly pieceHash: (piece: number) => Uint8Array
  private readonly files: FileState[]
  private readonly handles: Handles
  /** downloads: the staging folder and its inode; undefined for seed stores */
  private readonly staging: { path: string, stamp: Stamp } | undefined
  private readonly emptyFolders: ReadonlyArray<readonly string[]>
  private readonly wantedBytes: number
  private writable: boolean
  private closed = false
  private finalized = false
  private finalizing: Promise<void> | undefined

  constructor (init: {
    path: string
    spec: FolderSpec
    files: FileState[]
    selected: Set<number>
    existing: Set<number>
    staging: { path: string, stamp: Stamp } | undefined
    emptyFolders: ReadonlyArray<readonly string[]>
    maxOpenFiles: number
    reusedPart: boolean
  }) {
    this.path = init.path
    this.layout = init.spec.layout
    this.pieceHash = init.spec.pieceHash
    this.files = init.files
    this.selected = init.selected
    this.existingFiles = init.existing
    this.staging = init.staging
    this.emptyFolders = init.emptyFolders
    this.reusedPart = init.reusedPart
    this.writable = init.staging !== undefined
    this.handles = new Handles(init.maxOpenFiles, init.path)
    let wanted = 0
    for (const i of init.selected) wanted += this.layout.files[i].length
    this.wantedBytes = wanted
  }

  private checkOpen (): void {
    if (this.closed) throw new StorageError(`${this.path}: store is closed`)
  }

  private checkPiece (piece: number): number {
    return storeChecks.piece(this.path, this.layout.pieceCount, piece, (p) => this.layout.pieceSize(p))
  }

  private finalPath (span: FileSpan): string {
    return join(this.path, ...span.path)
  }

  private foldersOf (path: readonly string[]): string[] {
    return foldersOn(this.path, path)
  }

  private partFile (index: number): string {
    if (this.staging === undefined) throw new StorageError(`${this.path}: a seed store has no part files`)
    return join(this.staging.path, String(index))
  }

  /** the file `f`'s bytes are read from, for messages */
  private nameOf (f: FileState): string {
    return f.where.at === 'part' ? this.partFile(f.span.index) : this.finalPath(f.span)
  }

  /** Opens file `index` where its bytes are; a download's first write makes its part file. */
  private async openFile (index: number, create: boolean): Promise<FileHandle> {
    const f = this.files[index]
    const { O_RDONLY, O_RDWR, O_NOFOLLOW, O_NONBLOCK } = fsConstants
    const where = f.where
    if (where.at === 'nowhere') {
      if (!create) throw new StorageError(`${this.path}: ${showPath(f.span.path)} is not here`)
      return await this.createPart(f)
    }
    const path = this.nameOf(f)
    // O_NONBLOCK: a FIFO put in a file's place must not hang the open
    const flags = (where.at === 'part' ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK
    let fh: FileHandle
    try {
      fh = await open(path, flags)
    } catch (err) {
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    }
    try {
      const st = await fh.stat()
      if (where.stamp !== undefined) {
        // the inode we wrote and verified, or nothing: a swapped file is never read or written as ours
        if (!isStamp(st, where.stamp)) throw new StorageError(`${path} was replaced by another file`)
      } else if (!st.isFile() || st.size !== f.span.length) {
        throw new StorageError(`${path} changed: it is not the file of ${f.span.length} bytes the manifest says`)
      }
      return fh
    } catch (err) {
      await fh.close().catch(() => {})
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    }
  }

  /** The staging folder is still the one we made or checked (not a link put in its place). */
  private async checkStaging (): Promise<string> {
    const staging = this.staging
    if (staging === undefined) throw new StorageError(`${this.path}: store is read-only`)
    const st = await lstatOrUndefined(staging.path)
    if (st === undefined || !st.isDirectory() || !isStamp(st, staging.stamp)) {
      throw new StorageError(`${staging.path} was replaced during the download: not writing into it`)
    }
    return staging.path
  }

  private async createPart (f: FileState): Promise<FileHandle> {
    await this.checkStaging()
    const path = this.partFile(f.span.index)
    let fh: FileHandle
    let existed: boolean
    try {
      // O_NOFOLLOW, O_CREAT|O_EXCL; a link or foreign file at the name is removed, not followed
      ({ fh, existed } = await openPartFile(path))
    } catch (err) {
      throw new StorageError(`cannot write to ${path}: ${errno(err)}`)
    }
    try {
      // full size up front: pieces land at their offsets in any order (a sparse file); a file of
      // one piece gets its size from its one write
      const size = existed ? (await fh.stat()).size : 0
      if (size !== f.span.length && (existed || f.span.pieceCount > 1)) await fh.truncate(f.span.length)
      f.where = { at: 'part', stamp: stampOf(await fh.stat()) }
      f.dirty = true
      f.unflushed = true
      return fh
    } catch (err) {
      await fh.close().catch(() => {})
      throw new StorageError(`cannot write to ${path}: ${errno(err)}`)
    }
  }

  /** Reads `length` bytes at `offset` of `piece` into `buf`; a download's unwritten file reads as zeros. */
  private async readRange (piece: number, offset: number, length: number, buf: Uint8Array): Promise<Uint8Array> {
    this.checkOpen()
    const span = this.layout.fileOf(piece)
    const f = this.files[span.index]
    if (f.where.at === 'nowhere') {
      if (this.staging === undefined) throw new StorageError(`${this.path}: piece ${piece} is in ${showPath(span.path)}, which this store does not hold`)
      buf.fill(0, 0, length) // a hole, as in a sparse part file
      return buf
    }
    const position = this.layout.offsetInFile(piece) + offset
    return await this.handles.use(span.index, async () => await this.openFile(span.index, false),
      async (fh) => await readFully(fh, this.nameOf(f), position, length, buf))
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    storeChecks.block(this.path, piece, size, offset, length)
    return await this.readRange(piece, offset, length, new Uint8Array(length))
  }

  async readPiece (piece: number): Promise<Uint8Array> {
    const size = this.checkPiece(piece)
    return await this.readRange(piece, 0, size, new Uint8Array(size))
  }

  async readPieceInto (piece: number, into: Uint8Array): Promise<number> {
    const size = this.checkPiece(piece)
    storeChecks.into(this.path, piece, size, into)
    await this.readRange(piece, 0, size, into)
    return size
  }

  async verifyPiece (piece: number): Promise<boolean> {
    this.checkPiece(piece)
    this.checkOpen()
    // a file with no bytes anywhere cannot verify: no need to hash its zeros (verifyStore of a
    // big selection would otherwise hash every unselected piece)
    if (this.files[this.layout.fileOf(piece).index].where.at === 'nowhere') return false
    return await hashMatches(this.pieceHash(piece), await this.readPiece(piece))
  }

  async writePiece (piece: number, data: Uint8Array | Uint8Array[]): Promise<void> {
    const size = this.checkPiece(piece)
    // closed first: close() also makes the store read-only, and "closed" is what happened
    this.checkOpen()
    if (!this.writable) throw new StorageError(`${this.path}: store is read-only`)
    const span = this.layout.fileOf(piece)
    if (!this.selected.has(span.index)) throw new StorageError(`${this.path}: piece ${piece} is in ${showPath(span.path)}, which is not selected`)
    const f = this.files[span.index]
    if (f.where.at === 'final') throw new StorageError(`${this.finalPath(span)} is already there: it is read, never written over`)
    const chunks = Array.isArray(data) ? data : [data]
    const total = storeChecks.write(this.path, piece, size, chunks)
    await this.handles.use(span.index, async () => await this.openFile(span.index, true), async (fh) => {
      await writeFully(fh, this.partFile(span.index), this.layout.offsetInFile(piece), chunks, total)
      f.unflushed = true
      // the stamp the resume record describes, taken while the file is open: sync() then
      // reopens nothing (see sync)
      const st = await fh.stat()
      if (f.where.at === 'part') f.where = { at: 'part', stamp: stampOf(st) }
    })
    f.dirty = true
  }

  /** The part files' digest (see digestOf), from what this store knows of them. */
  private digest (): string {
    const parts: Array<{ index: number, stamp: Stamp }> = []
    for (const f of this.files) if (f.where.at === 'part') parts.push({ index: f.span.index, stamp: f.where.stamp })
    return digestOf(parts)
  }

  private newestMtime (): number {
    let newest = 0
    for (const f of this.files) {
      const w = f.where
      const m = w.at === 'part' ? w.stamp.mtimeMs : w.at === 'final' ? (w.stamp?.mtimeMs ?? w.mtimeMs) : 0
      if (m > newest) newest = m
    }
    return newest
  }

  /** fdatasync()s `f` and takes its stamp anew; flags are cleared first so a write meanwhile sets them again. */
  private async flush (f: FileState): Promise<Stats> {
    const index = f.span.index
    f.dirty = false
    const wasUnflushed = f.unflushed
    f.unflushed = false
    try {
      return await this.handles.use(index, async () => await this.openFile(index, false), async (fh) => {
        const st = await fh.stat()
        const where = f.where
        if (where.at === 'part' && !isStamp(st, where.stamp)) throw new StorageError(`${this.partFile(index)} was replaced during the download`)
        if (wasUnflushed) await fh.datasync()
        const after = await fh.stat()
        if (f.where.at === 'part') f.where = { at: 'part', stamp: stampOf(after) }
        return after
      })
    } catch (err) {
      f.dirty = true
      f.unflushed ||= wasUnflushed
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot sync ${this.nameOf(f)}: ${errno(err)}`)
    }
  }

  async sync (): Promise<PartState> {
    this.checkOpen()
    if (this.staging === undefined || this.finalized) return { size: this.wantedBytes, mtimeMs: this.newestMtime() }
    // No fdatasync here, unlike the single-file store: the resume record is only a claim, and
    // every piece it vouches for is hashed again on resume, so data lost to a crash is fetched
    // again, never trusted. Reopening and syncing each written file for every record cost a
    // 10,000-file download seven seconds of system time. finalize() syncs before it names a file.
    for (const f of this.files) if (f.dirty && f.where.at === 'part') f.dirty = false
    return { size: this.wantedBytes, mtimeMs: this.newestMtime(), parts: this.digest() }
  }

  async finalize (): Promise<void> {
    if (this.staging === undefined || this.finalized) return
    this.checkOpen()
    // two calls at once share one pass
    this.finalizing ??= this.place().finally(() => { this.finalizing = undefined })
    await this.finalizing
  }

  /**
   * Puts every selected file at its final name: checks all names first (a conflict places
   * nothing), then makes the folders on the way and links each part file there.
   */
  private async place (): Promise<void> {
    const staging = this.staging
    if (staging === undefined) return
    const chosen = [...this.selected].sort((a, b) => a - b).map(i => this.files[i])
    const toPlace = chosen.filter(f => f.where.at === 'part')
    const unwritten = chosen.find(f => f.span.length > 0 && f.where.at === 'nowhere')
    if (unwritten !== undefined) throw new StorageError(`cannot finalize ${this.path}: ${showPath(unwritten.span.path)} was never written`)

    // data on disk before the name says the file is complete; and each part still the inode we wrote
    const own = new Map<number, Stats>()
    await forEachLimit(toPlace, FS_CONCURRENCY, async (f) => { own.set(f.span.index, await this.flush(f)) })

    const walk = new FolderWalk()
    const appeared = (path: string): StorageError =>
      new StorageError(`cannot finalize ${path}: something by that name appeared during the download (the verified data is left in ${staging.path})`)
    // every name first: a link or a file in the way is found before anything is placed
    for (const f of chosen) {
      if (f.where.at === 'final') continue
      if (!(await walk.probeAll(this.foldersOf(f.span.path)))) continue
      const there = await lstatOrUndefined(this.finalPath(f.span))
      if (there === undefined) continue
      const mine = own.get(f.span.index)
      if (mine !== undefined && sameFile(there, mine)) continue // placed by an earlier, interrupted finalize
      if (f.span.length === 0 && there.isFile() && there.size === 0) continue // an empty file: the same file
      throw appeared(this.finalPath(f.span))
    }
    for (const folder of this.emptyFolders) await walk.probeAll([...this.foldersOf(folder), join(this.path, ...folder)])
    // the part names are linked from: the staging folder must still be ours, not a link to elsewhere
    if (toPlace.length > 0) await this.checkStaging()

    await forEachLimit(chosen, FS_CONCURRENCY, async (f) => {
      if (f.where.at === 'final') return
      const final = this.finalPath(f.span)
      await walk.make(this.foldersOf(f.span.path))
      if (f.where.at === 'part') {
        const mine = own.get(f.span.index) as Stats
        try {
          // link(2): never replaces a name, even a dangling link; then checks the name holds our inode
          await placeFile(this.partFile(f.span.index), final, mine)
        } catch (err) {
          if (err instanceof StorageError) throw err
          throw new StorageError(`cannot finalize ${final}: ${errno(err)}`)
        }
        f.where = { at: 'final', stamp: stampOf(mine), mtimeMs: mine.mtimeMs }
        return
      }
      // an empty file has no part: made here, exclusively, never through a link
      await makeEmptyFile(final, appeared)
      f.where = { at: 'final', stamp: undefined, mtimeMs: Date.now() }
    })
    for (const folder of this.emptyFolders) await walk.make([...this.foldersOf(folder), join(this.path, ...folder)])

    // the staging folder goes once empty; parts of files not selected stay for a later run
    await rmdir(staging.path).catch(() => {})
    this.finalized = true
    // a finished download goes on seeding what it has, read-only
    this.writable = false
  }

  get partPath (): string | undefined {
    return this.staging === undefined || this.finalized ? undefined : this.staging.path
  }

  async close (): Promise<void> {
    this.closed = true
    this.writable = false
    await this.handles.closeAll()
  }
}

async function makeEmptyFile (path: string, appeared: (path: string) => StorageError): Promise<void> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants
  try {
    await (await open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666)).close()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(`cannot finalize ${path}: ${errno(err)}`)
    const there = await lstatOrUndefined(path)
    // an empty regular file is what we would have made (an earlier run's, or the user's)
    if (there === undefined || !there.isFile() || there.size !== 0) throw appeared(path)
  }
}

function freshStates (layout: Layout): FileState[] {
  return layout.files.map(span => ({ span, where: { at: 'nowhere' }, dirty: false, unflushed: false }))
}

/**
 * A read-only store serving the files of `spec` from the folder `dir` (`<dir>/<path…>`): each
 * selected file must be there, a regular file of its manifest size (StorageError otherwise);
 * files not selected are never opened, and reading their pieces is a StorageError (a partial
 * seeder serves only what it has).
 */
export async function openFolderSeedStore (dir: string, spec: FolderSpec, options: FolderStoreOptions = {}): Promise<FolderStore> {
  checkSpec(spec)
  const selected = selectionOf(spec.layout, options.selected)
  let st: Stats
  try {
    st = await stat(dir)
  } catch (err) {
    if (absent(err)) throw new StorageError(`${dir} is missing`)
    throw new StorageError(`cannot read ${dir}: ${errno(err)}`)
  }
  if (!st.isDirectory()) throw new StorageError(`${dir} is not a folder`)
  const files = freshStates(spec.layout)
  await forEachLimit([...selected], FS_CONCURRENCY, async (i) => {
    const span = spec.layout.files[i]
    const path = join(dir, ...span.path)
    let fst: Stats
    try {
      fst = await lstat(path)
    } catch (err) {
      if (absent(err)) throw new StorageError(`${path} is missing`)
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    }
    // as createManifest: a link is not shared (and its file is opened O_NOFOLLOW, see openFile)
    if (fst.isSymbolicLink()) throw new StorageError(`${path} is a symbolic link: not shared`)
    if (!fst.isFile()) throw new StorageError(`${path} is not a regular file`)
    if (fst.size !== span.length) throw new StorageError(`${path} has ${fst.size} bytes, manifest says ${span.length}`)
    files[i].where = { at: 'final', stamp: undefined, mtimeMs: fst.mtimeMs }
  })
  return new FolderPieceStore({
    path: dir, spec, files, selected, existing: new Set(), staging: undefined, emptyFolders: [],
    maxOpenFiles: maxOpenOf(options), reusedPart: false
  })
}

function maxOpenOf (options: FolderStoreOptions): number {
  const max = options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES
  if (!Number.isSafeInteger(max) || max < 1) throw new StorageError(`maxOpenFiles must be a whole number >= 1, got ${max}`)
  return max
}

/**
 * Makes (or finds) the staging folder: ours, a real folder. A symlink at its name is removed and
 * a folder made instead (the name is in our reserved namespace; what the link pointed at is
 * untouched).
 */
async function prepareStaging (outDir: string, path: string): Promise<Stamp> {
  for (let attempt = 0; attempt < 4; attempt++) {
    let st = await lstatOrUndefined(path)
    if (st?.isSymbolicLink() === true) {
      await unlink(path)
      st = undefined
    }
    if (st === undefined) {
      try {
        await mkdir(path, 0o700) // others cannot plant links in a folder they cannot write to
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue // made in between: look again
        throw err
      }
      continue
    }
    if (!st.isDirectory()) throw new StorageError(`cannot write to ${outDir}: ${path} is not a folder`)
    const uid = ownUid()
    if (uid !== undefined && st.uid !== uid) throw new StorageError(`cannot write to ${outDir}: ${path} belongs to another user`)
    return stampOf(st)
  }
  throw new StorageError(`cannot write to ${outDir}: ${path} keeps being replaced`)
}

/**
 * Finds an earlier run's part files in the staging folder and keeps those that are ours; removes
 * names that are not (a symlink, a file with other hard links or another owner, a part of no file
 * of this manifest): the names only, never what they point at.
 */
async function scanStaging (staging: string, layout: Layout, files: FileState[]): Promise<number> {
  const names = (await readdir(staging)).filter(name => PART_NAME.test(name))
  let kept = 0
  await forEachLimit(names, FS_CONCURRENCY, async (name) => {
    const path = join(staging, name)
    const span = layout.files[Number(name)]
    const st = await lstatOrUndefined(path)
    if (st === undefined) return
    const uid = ownUid()
    const foreign = st.isSymbolicLink() || (st.isFile() && (st.nlink !== 1 || (uid !== undefined && st.uid !== uid)))
    if (span === undefined || span.length === 0 || foreign) {
      await unlink(path)
      return
    }
    if (!st.isFile()) throw new StorageError(`${path} is not a regular file`)
    let stamp = stampOf(st)
    if (st.size !== span.length) {
      const { O_RDWR, O_NOFOLLOW, O_NONBLOCK } = fsConstants
      const fh = await open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK)
      try {
        const fst = await fh.stat()
        if (!isStamp(fst, stamp)) throw new StorageError(`${path} was replaced while being opened`)
        await fh.truncate(span.length)
        stamp = stampOf(await fh.stat())
      } finally {
        await fh.close()
      }
    }
    files[span.index].where = { at: 'part', stamp }
    // an earlier run's writes may still be in the page cache only: fsync before placing
    files[span.index].unflushed = true
    kept++
  })
  return kept
}

/**
 * A download of the folder `spec` into `<outDir>/<spec.name>/`, written to part files in
 * `<outDir>/.bitswarm-<key>.parts/` until finalize() (`key`: the manifest CID). An earlier run's
 * part files are kept (reusedPart); selected files already at their final names are read and
 * never written (existingFiles). A symlink or a non-folder at `<outDir>/<name>` or on the way to
 * a selected file, or anything but a file of the right size at a selected file's final name, is a
 * StorageError before anything is written.
 */
export async function openFolderDownloadStore (outDir: string, spec: FolderSpec, key: string, options: FolderDownloadOptions = {}): Promise<FolderStore> {
  checkSpec(spec)
  if (reservedName(spec.name)) {
    throw new StorageError(`folder name in manifest is reserved for bitswarm's temporary files (${TEMP_PREFIX}…): ${JSON.stringify(spec.name)}`)
  }
  const selected = selectionOf(spec.layout, options.selected)
  const emptyFolders = options.emptyFolders ?? (options.selected === undefined ? spec.emptyFolders ?? [] : [])
  for (const folder of emptyFolders) {
    for (const c of folder) if (componentProblem(c) !== undefined || folder.length === 0) throw new StorageError(`${spec.name}: unsafe folder ${JSON.stringify(showPath(folder))}`)
  }
  const maxOpenFiles = maxOpenOf(options)
  const stagingPath = stagingPathOf(outDir, key)
  try {
    await ensureDir(outDir)
    if (!(await stat(outDir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
  } catch (err) {
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }
  const root = join(outDir, spec.name)
  const walk = new FolderWalk()
  // the commonest planted link, at the folder itself, is refused before anything is made
  const rootThere = await walk.probe(root).catch((err: unknown) => {
    if (err instanceof StorageError) throw err
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  })

  const files = freshStates(spec.layout)
  let kept: number
  let stagingStamp: Stamp
  try {
    stagingStamp = await prepareStaging(outDir, stagingPath)
    kept = await scanStaging(stagingPath, spec.layout, files)
  } catch (err) {
    if (err instanceof StorageError) throw err
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }

  // an earlier partial selection may have left files in the folder: merge, never replace
  const existing = new Set<number>()
  if (rootThere) {
    const chosen = [...selected]
    for (const i of chosen) {
      const f = files[i]
      if (!(await walk.probeAll(foldersOn(root, f.span.path)))) continue
      const final = join(root, ...f.span.path)
      const there = await lstatOrUndefined(final)
      if (there === undefined) continue
      if (f.where.at === 'nowhere' && there.isFile() && there.size === f.span.length) {
        f.where = { at: 'final', stamp: undefined, mtimeMs: there.mtimeMs }
        existing.add(i)
        continue
      }
      throw new StorageError(`${final} already exists: move it away first`)
    }
  }
  return new FolderPieceStore({
    path: root,
    spec,
    files,
    selected,
    existing,
    staging: { path: stagingPath, stamp: stagingStamp },
    emptyFolders,
    maxOpenFiles,
    reusedPart: kept > 0 || existing.size > 0
  })
}
