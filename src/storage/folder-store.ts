/**
 * A folder on disk as a PieceStore: the files of a folder manifest, each starting on a piece
 * boundary (manifest/layout.ts), so every piece lies in exactly one file and is read from or
 * written to that file alone.
 *
 * Seeding reads `<dir>/<path…>`. A download writes nothing at the final names until finalize():
 *
 *   <out>/.bitswarm-<cid>.parts/          the staging folder (mode 0700), ours alone
 *   <out>/.bitswarm-<cid>.parts/pack      the pack: every small file's bytes (see below), one
 *                                         file opened once and kept open for the download
 *   <out>/.bitswarm-<cid>.parts/<index>   one part file per larger file of the manifest, made on
 *                                         its first write, sparse, at the file's full size
 *   <out>/.bitswarm-<cid>.resume          the resume record (resume.ts), beside it
 *   <out>/<name>/<path…>                  where finalize() puts each selected file: a hard link
 *                                         (never replacing anything), then the part name goes
 *
 * Small files (1 byte to `packFilesUpTo`, 64 KiB by default) do not get a part file while they
 * download: a file of its own cost a dozen file-system calls (make, stat, reopen, sync, link…),
 * each a thread-pool round trip, which for a folder of 10,000 files of 4 KiB took six times the
 * time of the same bytes as one file. Their pieces go to a slot each in the pack instead, on a
 * descriptor that stays open: a positional read per piece, and the pieces written in one turn of
 * the event loop written together, neighbouring slots in one call. finalize() copies each out
 * into a part file of its own (made, written, stat()ed, closed; then, once all of them are on disk
 * by one syncfs, linked to its final name, checked and unlinked), from the end of the pack down,
 * cutting the pack short behind it, so the copies never need much more room than the files. The copy costs a second write of the file's bytes, which is
 * why only small files take this path: above 64 KiB that write costs more than the calls it saves,
 * and a large file is linked from its part file, never copied.
 *
 * The pack starts with a header: a magic string, the number of slots, the manifest's number of
 * files, and each slot's file index (its top bit set once the slot is given up), with room for
 * every file of the manifest; the slots' bytes follow, end to end, in the order they were given.
 * Slots are only added at the end, so an earlier run's bytes stay where they were whatever this
 * run selects; the pack holds at most 2 GiB of files (FAT32's limit is 4), later ones get part
 * files. It is part of the staging state like any part file: the resume record's digest covers
 * it, and what it held is hashed again on resume.
 *
 * Writes never leave `out`. Node has no openat(), so every folder under `out` that we enter or
 * make is lstat()ed first: a symlink at a user-visible name (`<out>/<name>`, a folder on the way,
 * a final file name) is refused with a StorageError naming it, and never followed; a symlink in
 * our reserved names (the staging folder, a part file, the pack) is removed (the link, not what it
 * points at) and replaced by a folder or file of our own. Part files and the pack are opened
 * O_NOFOLLOW, created O_CREAT|O_EXCL, and checked against the inode we made before every reopen
 * and at finalize. What remains is the race no path-based API can close: a folder swapped for a
 * link between our lstat() and the next call, by someone who can write into `out` at that very
 * moment.
 *
 * A selection (file indexes) limits what is written and placed: pieces of other files are refused,
 * and their names never appear. Part files and pack slots of files not selected now (an earlier
 * run's) are kept in the staging folder for a later run, which is then removed only once empty.
 * Existing files at selected final names (an earlier selection's) are merged with, read-only,
 * never replaced.
 *
 * File handles of part and final files are opened lazily and kept in an LRU (a folder may hold
 * 100,000 files). The calls on small files (the pack's reads and writes, a small file's open, read
 * and close, the copies out of the pack but their fsync) are made inline, on the main thread, while
 * they take microseconds (InlineCalls): a thread-pool round trip costs more than such a call.
 */
import { createHash } from 'node:crypto'
import * as fsCallbacks from 'node:fs'
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs'
import { lstat, mkdir, open, readdir, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import { Bitfield } from '../bitfield.js'
import type { FileSpan, Layout } from '../manifest/layout.js'
import { manifestLayout, pieceHash, type FolderManifest } from '../manifest/manifest.js'
import {
  ensureDir, errno, hashMatches, NO_HARD_LINKS, openPartFile, placeFile, readFully, readFullySync, reservedName, sameFile,
  stagingPathOf, StorageError, storeChecks, TEMP_PREFIX, writeFully, writeFullySync, type DownloadStore, type PartState
} from './storage.js'
import { InlineCalls, type FsCalls } from './inline-calls.js'
import { fileSystemSyncUsable, syncFileSystem } from './sync-fs.js'

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
  /**
   * File handles kept open at most (default 512), besides those in use at that moment: a peer
   * asks for pieces in no particular order, so with fewer handles than files serving a block
   * mostly costs an open, a stat and a close around its read. 512 keeps a folder of a few hundred
   * files open whole and stays well inside the usual RLIMIT_NOFILE (Node raises its soft limit to
   * the hard one, typically 2^19 or more on Linux, 10,240 on macOS; 1,024 only where it cannot),
   * beside a swarm's sockets. A download's pack takes one more.
   */
  maxOpenFiles?: number
  /**
   * Small files' calls (a pack slot's read or write, a small file's open, read and close, a copy
   * out of the pack) made on the main thread while they take microseconds (see InlineCalls);
   * default true. False: every call on libuv's thread pool (a file system known to be slow).
   */
  inlineCalls?: boolean
}

export interface FolderDownloadOptions extends FolderStoreOptions {
  /**
   * The empty folders finalize() makes. Default: all of the spec's without a selection, none with
   * one (which empty folders a selection takes is the caller's rule, e.g. its globs).
   */
  emptyFolders?: ReadonlyArray<readonly string[]>
  /**
   * Files of 1 to this many bytes download into the staging folder's pack instead of part files
   * of their own (see the module header); default 64 KiB, 0 for none.
   */
  packFilesUpTo?: number
  /**
   * finalize makes many small files durable with one syncfs of their file system where it can
   * (see sync-fs.ts), instead of an fdatasync each; default true. False: an fdatasync each.
   */
  fileSystemSync?: boolean
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

const DEFAULT_MAX_OPEN_FILES = 512
/** the default of packFilesUpTo: see the module header */
const DEFAULT_PACK_FILES_UP_TO = 64 * 1024
/** bytes of files one pack holds at most (the header aside): a FAT32 file ends at 4 GiB */
const PACK_MAX_BYTES = 2 * 1024 * 1024 * 1024
/** the pack's name in the staging folder */
const PACK_NAME = 'pack'
/** the pack's first bytes */
const PACK_MAGIC = Buffer.from('BSWPACK1', 'latin1')
/** magic, number of slots, number of files of the manifest */
const PACK_HEADER_BYTES = 16
/** a slot's entry in the header with this bit set: given up, its bytes no longer any file's */
const PACK_DEAD = 0x80000000
/** the slots start on a page after the header */
const PACK_ALIGN = 4096
/** finalize reads neighbouring slots from the pack this many bytes at a time, at most */
const COPY_BATCH_BYTES = 256 * 1024
/**
 * finalize cuts the pack short behind the files it copied out in about this many steps (each once
 * at least PACK_CUT_MIN_BYTES are behind it): the copies never take more than a sixteenth of the
 * pack besides it, for a handful of calls
 */
const PACK_CUT_STEPS = 16
const PACK_CUT_MIN_BYTES = 1024 * 1024
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
  /** in its slot of the pack (a small file of a download); where a slot was never written, zeros */
  | { at: 'pack' }
  /** at its final name: placed by us (`stamp`, checked on every reopen), or found there */
  | { at: 'final', stamp: Stamp | undefined, mtimeMs: number }

interface FileState {
  span: FileSpan
  where: Where
  /** written since the last sync(): its stamp in the resume digest is out of date */
  dirty: boolean
  /** its data may not be on disk yet (written, or kept from an earlier run, and not fsynced) */
  unflushed: boolean
  /** a piece of it was written, or verified, by this store: for a pack slot, worth keeping */
  held: boolean
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

/** files up to this size (the default of packFilesUpTo) are read with inline calls once placed, or when seeded */
const INLINE_FILE_BYTES = DEFAULT_PACK_FILES_UP_TO
const fdatasyncOnPool = promisify(fsCallbacks.fdatasync)

/**
 * The digest of a staging folder's part files, each as index, size, mtime and inode, and of its
 * pack the same way: what a folder's resume record keeps in place of a single part file's size and
 * mtime. The store and stagingDigest compute it the same way, from fstat and lstat of the same
 * files. Without a pack it is what it was before there were packs.
 */
function digestOf (parts: Array<{ index: number, stamp: Stamp }>, pack: Stamp | undefined): string {
  const hash = createHash('sha256')
  for (const { index, stamp } of parts.sort((a, b) => a.index - b.index)) {
    hash.update(`${index} ${stamp.size} ${stamp.mtimeMs} ${stamp.ino}\n`)
  }
  if (pack !== undefined) hash.update(`${PACK_NAME} ${pack.size} ${pack.mtimeMs} ${pack.ino}\n`)
  return hash.digest('hex')
}

/**
 * The digest of the part files and the pack in the staging folder `dir` as they are on disk now,
 * or undefined if `dir` is not a real folder or holds something other than regular files at their
 * names (the store removes those when it opens, so a record can only match a cleaned-up folder).
 */
export async function stagingDigest (dir: string): Promise<string | undefined> {
  const st = await lstatOrUndefined(dir)
  if (st === undefined || !st.isDirectory()) return undefined
  const names = (await readdir(dir)).filter(name => PART_NAME.test(name) || name === PACK_NAME)
  const parts: Array<{ index: number, stamp: Stamp }> = []
  let pack: Stamp | undefined
  let odd = false
  await forEachLimit(names, FS_CONCURRENCY, async (name) => {
    const part = await lstatOrUndefined(join(dir, name))
    if (part === undefined) return
    if (!part.isFile()) odd = true
    else if (name === PACK_NAME) pack = stampOf(part)
    else parts.push({ index: Number(name), stamp: stampOf(part) })
  })
  return odd ? undefined : digestOf(parts, pack)
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
  /** folders being made now: path → the mkdir (and its check) every file placed there waits for */
  private readonly making = new Map<string, Promise<void>>()

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

  /**
   * Makes each of `dirs` (from the root down) that is missing; never through a link. Files placed
   * side by side wait for one mkdir of their folder: each making its own cost two thread-pool
   * round trips a file (10,000 files in 100 folders made about 2,000 mkdirs, nearly all EEXIST).
   */
  async make (dirs: readonly string[]): Promise<void> {
    for (const dir of dirs) {
      if (this.known.get(dir) === true) continue
      let making = this.making.get(dir)
      if (making === undefined) {
        making = this.makeOne(dir).finally(() => { this.making.delete(dir) })
        this.making.set(dir, making)
      }
      await making
    }
  }

  private async makeOne (dir: string): Promise<void> {
    try {
      await mkdir(dir) // mkdir(2) never follows a link at its last component: it says EEXIST
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(`cannot make the folder ${dir}: ${errno(err)}`)
    }
    this.known.delete(dir)
    if (!(await this.probe(dir))) throw new StorageError(`cannot make the folder ${dir}: it vanished`)
  }
}

/** `n` rounded up to a multiple of `to` */
const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to

/** A pack write waiting for the end of the event-loop turn (see PackFile.write). */
interface QueuedWrite { at: number, chunks: Uint8Array[], total: number, resolve: () => void, reject: (err: unknown) => void }
/** one call writes at most this many buffers (IOV_MAX is 1,024 on Linux) or bytes */
const WRITE_RUN_CHUNKS = 512
const WRITE_RUN_BYTES = 4 * 1024 * 1024

/** A file's slot in the pack. */
interface PackSlot {
  /** where its bytes start in the pack */
  offset: number
  /** given up: its bytes are no file's any more (placed, or never held) */
  dead: boolean
  /** given in this run: nothing was ever written to it before */
  fresh: boolean
}

/**
 * The slots' entries of an earlier run's pack (file indexes, PACK_DEAD set on given-up ones), or
 * undefined if its header is not one of this manifest's.
 */
async function readPackHeader (fh: FileHandle, layout: Layout): Promise<number[] | undefined> {
  const head = Buffer.alloc(PACK_HEADER_BYTES)
  if ((await fh.read(head, 0, head.length, 0)).bytesRead < head.length || !head.subarray(0, PACK_MAGIC.length).equals(PACK_MAGIC)) return undefined
  const count = head.readUInt32LE(8)
  if (head.readUInt32LE(12) !== layout.files.length || count > layout.files.length) return undefined
  const raw = Buffer.alloc(4 * count)
  for (let done = 0; done < raw.length;) {
    const { bytesRead } = await fh.read(raw, done, raw.length - done, PACK_HEADER_BYTES + done)
    if (bytesRead === 0) return undefined
    done += bytesRead
  }
  const seen = new Set<number>()
  const entries: number[] = []
  let bytes = 0
  for (let k = 0; k < count; k++) {
    const entry = raw.readUInt32LE(4 * k)
    const index = entry & ~PACK_DEAD
    const span = layout.files[index]
    if (span === undefined || span.length === 0 || seen.has(index)) return undefined
    seen.add(index)
    entries.push(entry)
    bytes += span.length
  }
  return bytes <= PACK_MAX_BYTES ? entries : undefined
}

/**
 * A download's pack (see the module header): the small files' bytes, in slots of one file opened
 * once, each read one positional call, the writes of one event-loop turn one call per run of
 * neighbouring slots (see write). Past its end it reads as zeros (a slot not written yet), as a
 * part file's holes do.
 */
class PackFile {
  /** the slots' files, in the order of their slots */
  private readonly order: number[] = []
  /** by file index */
  private readonly slots = new Map<number, PackSlot>()
  private readonly dataStart: number
  /** where the next slot goes */
  private end: number
  /** the header on disk does not say what `order` and `slots` do */
  private changed: boolean
  private fh: FileHandle | undefined
  /** who it is, and how it was when last looked at */
  stamp: Stamp
  /** written since `stamp` was taken */
  private dirty = false
  /** writes waiting for the end of this event-loop turn (see write) */
  private queued: QueuedWrite[] = []
  private flushTimer: ReturnType<typeof setImmediate> | undefined
  private flushing: Promise<void> | undefined

  private constructor (readonly path: string, fh: FileHandle, private readonly layout: Layout, private readonly inline: InlineCalls, entries: number[], stamp: Stamp, changed: boolean) {
    this.fh = fh
    this.stamp = stamp
    this.changed = changed
    this.dataStart = roundUp(PACK_HEADER_BYTES + 4 * layout.files.length, PACK_ALIGN)
    this.end = this.dataStart
    for (const entry of entries) {
      const index = entry & ~PACK_DEAD
      this.slots.set(index, { offset: this.end, dead: (entry & PACK_DEAD) !== 0, fresh: false })
      this.order.push(index)
      this.end += layout.files[index].length
    }
  }

  /**
   * Opens the pack at `path`, made if missing: a link or a file not ours at the name is removed,
   * never followed (openPartFile). An earlier run's pack keeps its slots if its header is one of
   * this manifest's, and starts afresh otherwise.
   */
  static async open (path: string, layout: Layout, inline: InlineCalls): Promise<PackFile> {
    const { fh, existed } = await openPartFile(path)
    try {
      const entries = existed ? await readPackHeader(fh, layout) : undefined
      if (existed && entries === undefined) await fh.truncate(0)
      return new PackFile(path, fh, layout, inline, entries ?? [], stampOf(await fh.stat()), entries === undefined)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }

  /** the files whose slots are live */
  liveFiles (): number[] {
    return this.order.filter(i => this.slots.get(i)?.dead === false)
  }

  get liveCount (): number {
    let n = 0
    for (const slot of this.slots.values()) if (!slot.dead) n++
    return n
  }

  /** Gives file `index` a slot (back its own if it had one); false if the pack is full. */
  add (index: number): boolean {
    const slot = this.slots.get(index)
    if (slot !== undefined) {
      if (slot.dead) {
        slot.dead = false
        this.changed = true
      }
      return true
    }
    const length = this.layout.files[index].length
    if (this.end + length > this.dataStart + PACK_MAX_BYTES) return false
    this.slots.set(index, { offset: this.end, dead: false, fresh: true })
    this.order.push(index)
    this.end += length
    this.changed = true
    return true
  }

  /** Gives up file `index`'s slot: its bytes are no longer taken for the file's. */
  drop (index: number): void {
    const slot = this.slots.get(index)
    if (slot === undefined || slot.dead) return
    slot.dead = true
    this.changed = true
  }

  /** where file `index`'s slot starts */
  offsetOf (index: number): number {
    const slot = this.slots.get(index)
    if (slot === undefined) throw new StorageError(`${this.path}: no slot for file ${index}`)
    return slot.offset
  }

  /** Was file `index`'s slot given in this run (so nothing was written to it before)? */
  isFresh (index: number): boolean {
    return this.slots.get(index)?.fresh === true
  }

  private handle (): FileHandle {
    if (this.fh === undefined) throw new StorageError(`${this.path} is closed`)
    return this.fh
  }

  /**
   * Reads `length` bytes at `position` of file `index`'s slot into `buf`; past the pack's end,
   * zeros. Inline (see InlineCalls) while those are on; else through the FileHandle, which close()
   * waits for (a raw descriptor's call on the pool could outlive it, and land in another file).
   */
  async read (index: number, position: number, length: number, buf: Uint8Array): Promise<void> {
    if (this.queued.length > 0 || this.flushing !== undefined) await this.flushWrites()
    if (this.inline.on) await this.inline.pace()
    const fh = this.handle()
    const at = this.offsetOf(index) + position
    for (let done = 0; done < length;) {
      let bytesRead: number
      try {
        bytesRead = this.inline.on
          ? this.inline.run(() => readSync(fh.fd, buf, done, length - done, at + done))
          : (await fh.read(buf, done, length - done, at + done)).bytesRead
      } catch (err) {
        throw new StorageError(`cannot read ${this.path}: ${errno(err)}`)
      }
      if (bytesRead === 0) {
        buf.fill(0, done, length)
        return
      }
      done += bytesRead
    }
  }

  /** `length` bytes at `offset`, every one of them there (see readFully). */
  async readExact (offset: number, length: number): Promise<Uint8Array> {
    if (this.queued.length > 0 || this.flushing !== undefined) await this.flushWrites()
    if (this.inline.on) await this.inline.pace()
    const fh = this.handle()
    if (this.inline.on) return this.inline.run(() => readFullySync(fh.fd, this.path, offset, length))
    return await readFully(fh, this.path, offset, length)
  }

  /**
   * Writes a piece (`chunks`, `total` bytes) at `position` of file `index`'s slot: see read.
   * Resolves once written. The pieces written in one turn of the event loop go out together at
   * its end, neighbours in one call: the picker asks for neighbouring pieces together, which are
   * neighbouring slots, so a batch of small files' pieces is one pwritev instead of one pwrite
   * each (a folder of 10,000 files of 4 KiB made 10,000 calls).
   */
  async write (index: number, position: number, chunks: Uint8Array[], total: number): Promise<void> {
    this.handle()
    const at = this.offsetOf(index) + position
    await new Promise<void>((resolve, reject) => {
      this.queued.push({ at, chunks, total, resolve, reject })
      this.flushTimer ??= setImmediate(() => { this.flushTimer = undefined; void this.flushWrites() })
    })
  }

  /** Writes what is queued now (see write); never rejects (each write's promise does). */
  async flushWrites (): Promise<void> {
    while (this.flushing !== undefined) await this.flushing
    if (this.queued.length === 0) return
    if (this.flushTimer !== undefined) { clearImmediate(this.flushTimer); this.flushTimer = undefined }
    const queued = this.queued.sort((a, b) => a.at - b.at)
    this.queued = []
    this.flushing = this.writeRuns(queued).finally(() => { this.flushing = undefined })
    await this.flushing
  }

  /** Writes `queued` (sorted by position), each run of neighbours with one call. */
  private async writeRuns (queued: QueuedWrite[]): Promise<void> {
    if (this.inline.on) await this.inline.pace()
    for (let i = 0; i < queued.length;) {
      let j = i + 1
      let end = queued[i].at + queued[i].total
      let count = queued[i].chunks.length
      while (j < queued.length && queued[j].at === end && count + queued[j].chunks.length <= WRITE_RUN_CHUNKS && end - queued[i].at < WRITE_RUN_BYTES) {
        end += queued[j].total
        count += queued[j].chunks.length
        j++
      }
      const run = queued.slice(i, j)
      i = j
      const chunks = run.length === 1 ? run[0].chunks : run.flatMap(w => w.chunks)
      try {
        const fh = this.handle()
        this.dirty = true
        if (this.inline.on) this.inline.run(() => { writeFullySync(fh.fd, this.path, run[0].at, chunks, end - run[0].at) })
        else await writeFully(fh, this.path, run[0].at, chunks, end - run[0].at)
        for (const w of run) w.resolve()
      } catch (err) {
        for (const w of run) w.reject(err)
      }
    }
  }

  /** Writes the header if the slots changed since it was last written. */
  async commit (): Promise<void> {
    if (!this.changed) return
    const head = Buffer.alloc(PACK_HEADER_BYTES + 4 * this.order.length)
    PACK_MAGIC.copy(head, 0)
    head.writeUInt32LE(this.order.length, 8)
    head.writeUInt32LE(this.layout.files.length, 12)
    for (const [k, index] of this.order.entries()) {
      head.writeUInt32LE(this.slots.get(index)?.dead === true ? (index | PACK_DEAD) >>> 0 : index, PACK_HEADER_BYTES + 4 * k)
    }
    const fh = this.handle()
    this.changed = false
    this.dirty = true
    try {
      await writeFully(fh, this.path, 0, [head], head.length)
    } catch (err) {
      this.changed = true
      throw err
    }
  }

  /** Takes the stamp anew if the pack was written since. */
  async restamp (): Promise<void> {
    await this.flushWrites()
    if (!this.dirty) return
    const fh = this.handle()
    this.dirty = false
    try {
      this.stamp = stampOf(await fh.stat())
    } catch (err) {
      this.dirty = true
      throw new StorageError(`cannot sync ${this.path}: ${errno(err)}`)
    }
  }

  /** The pack's name still holds our pack, not a link or another file put in its place. */
  async check (): Promise<void> {
    const st = await lstatOrUndefined(this.path)
    if (st === undefined || !st.isFile() || !isStamp(st, this.stamp)) {
      throw new StorageError(`${this.path} was replaced during the download: not taking files out of it`)
    }
  }

  /** Cuts the pack at `size` (the slots after it go), header included. */
  async cut (size: number): Promise<void> {
    const fh = this.handle()
    this.dirty = true
    await fh.truncate(Math.max(size, this.dataStart))
  }

  /** Drops the dead slots at the end, writes the header and cuts the pack after its last live slot. */
  async trim (): Promise<void> {
    while (this.order.length > 0) {
      const last = this.order[this.order.length - 1]
      if (this.slots.get(last)?.dead !== true) break
      this.order.pop()
      this.slots.delete(last)
      this.end -= this.layout.files[last].length
      this.changed = true
    }
    await this.commit()
    await this.cut(this.end)
  }

  async close (): Promise<void> {
    // queued writes land first (a later run finds what this one verified)
    await this.flushWrites()
    const fh = this.fh
    this.fh = undefined
    // FileHandle.close() waits for the reads and writes under way
    await fh?.close().catch(() => {})
  }

  /** Closes it and removes its name (ours: the staging folder's). */
  async remove (): Promise<void> {
    await this.close()
    await unlink(this.path).catch(() => {})
  }
}

/**
 * A file just opened where `where` says its bytes are: the inode we wrote and verified, or (a file
 * we did not write) a regular file of the manifest's size. A swapped file is never read or written
 * as ours.
 */
function checkOpened (st: Stats, where: Where & { at: 'part' | 'final' }, span: FileSpan, path: string): void {
  if (where.stamp !== undefined) {
    if (!isStamp(st, where.stamp)) throw new StorageError(`${path} was replaced by another file`)
  } else if (!st.isFile() || st.size !== span.length) {
    throw new StorageError(`${path} changed: it is not the file of ${span.length} bytes the manifest says`)
  }
}

/** Makes the file `path` anew (O_CREAT|O_EXCL, never through a link); a leftover at our reserved name is removed first. */
async function createFresh (io: FsCalls, path: string): Promise<number> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants
  for (let attempt = 0; ; attempt++) {
    try {
      return await io.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
    }
    await io.unlink(path)
  }
}

/**
 * Gives `temp`, a part file we made and wrote (`own`, its stats), the name `final` without
 * replacing anything there: link(2) never replaces a name, not even a dangling link. Then checks
 * the name holds our inode: `temp` swapped for another file before the link means `final` is
 * taken back and nothing is placed. Removing `temp` is the caller's part.
 */
async function linkCopy (io: FsCalls, temp: string, final: string, own: Stats, appeared: (path: string) => StorageError): Promise<void> {
  const there = async (): Promise<Stats | undefined> => await io.lstat(final).catch((err) => { if (absent(err)) return undefined; throw err })
  try {
    await io.link(temp, final)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (code === 'EEXIST') throw appeared(final)
    if (!NO_HARD_LINKS.has(code)) throw err
    // no hard links here (FAT, exFAT): check the name is free, then rename (a narrow race remains)
    if (await there() !== undefined) throw appeared(final)
    await io.rename(temp, final)
  }
  const now = await there()
  if (now === undefined || !sameFile(now, own)) {
    if (now !== undefined) await io.unlink(final).catch(() => {})
    throw new StorageError(`cannot finalize ${final}: ${temp} was replaced during the download by a file that was not verified`)
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
  /** downloads: the pack, while it holds any file's bytes */
  private pack: PackFile | undefined
  /** small files' calls, made inline while they are fast */
  private readonly inline: InlineCalls
  /** finalize: one syncfs for many files where it can (sync-fs.ts) */
  private readonly fileSystemSync: boolean
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
    pack: PackFile | undefined
    emptyFolders: ReadonlyArray<readonly string[]>
    maxOpenFiles: number
    reusedPart: boolean
    inline: InlineCalls
    fileSystemSync: boolean
  }) {
    this.path = init.path
    this.layout = init.spec.layout
    this.pieceHash = init.spec.pieceHash
    this.files = init.files
    this.selected = init.selected
    this.existingFiles = init.existing
    this.staging = init.staging
    this.pack = init.pack
    this.emptyFolders = init.emptyFolders
    this.reusedPart = init.reusedPart
    this.writable = init.staging !== undefined
    this.handles = new Handles(init.maxOpenFiles, init.path)
    this.inline = init.inline
    this.fileSystemSync = init.fileSystemSync
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
    // a small file's bytes in the pack are read and written through the pack's own descriptor
    if (where.at === 'pack') throw new StorageError(`${this.path}: ${showPath(f.span.path)} is in the pack`)
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
      checkOpened(await fh.stat(), where, f.span, path)
      return fh
    } catch (err) {
      await fh.close().catch(() => {})
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    }
  }

  /**
   * Reads `length` bytes at `position` of the small file `f` at its final name into `buf` with
   * inline calls (see InlineCalls): open, stat, read, close, each a few µs, where the LRU of
   * handles would mostly miss (peers ask in no particular order) and cost four thread-pool round
   * trips. The same checks as openFile.
   */
  private readSmallFile (f: FileState, where: Where & { at: 'final' }, position: number, length: number, buf: Uint8Array): Uint8Array {
    const path = this.finalPath(f.span)
    const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fsConstants
    const inline = this.inline
    let fd: number
    try {
      fd = inline.run(() => openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK))
    } catch (err) {
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    }
    try {
      checkOpened(inline.run(() => fstatSync(fd)), where, f.span, path)
      return inline.run(() => readFullySync(fd, path, position, length, buf))
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot read ${path}: ${errno(err)}`)
    } finally {
      try {
        inline.run(() => { closeSync(fd) })
      } catch {}
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
    const span = this.layout.fileOf(piece)
    const f = this.files[span.index]
    const position = this.layout.offsetInFile(piece) + offset
    for (;;) {
      this.checkOpen()
      const where = f.where
      if (where.at === 'nowhere') {
        if (this.staging === undefined) throw new StorageError(`${this.path}: piece ${piece} is in ${showPath(span.path)}, which this store does not hold`)
        buf.fill(0, 0, length) // a hole, as in a sparse part file
        return buf
      }
      if (where.at === 'final' && span.length <= INLINE_FILE_BYTES && this.inline.on) {
        await this.inline.pace()
        // placed or closed meanwhile: look again
        if (f.where !== where || this.closed) continue
        return this.readSmallFile(f, where, position, length, buf)
      }
      if (where.at !== 'pack') {
        try {
          return await this.handles.use(span.index, async () => await this.openFile(span.index, false),
            async (fh) => await readFully(fh, this.nameOf(f), position, length, buf))
        } catch (err) {
          // placed meanwhile (finalize names a copy, then removes its part name): read it there
          if (f.where !== where) continue
          throw err
        }
      }
      const pack = this.pack
      if (pack === undefined) throw new StorageError(`${this.path}: ${showPath(span.path)} is not here`)
      try {
        await pack.read(span.index, position, length, buf)
      } catch (err) {
        // placed meanwhile (finalize copies the files out, then cuts the pack short): read it there
        if (f.where !== where) continue
        throw err
      }
      if (f.where === where) return buf
    }
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
    // big selection would otherwise hash every unselected piece); nor can a pack slot given in
    // this run and not written since
    const f = this.files[this.layout.fileOf(piece).index]
    if (f.where.at === 'nowhere') return false
    if (f.where.at === 'pack' && !f.held && this.pack?.isFresh(f.span.index) === true) return false
    const matches = await hashMatches(this.pieceHash(piece), await this.readPiece(piece))
    // a slot with verified bytes of a file not placed now is kept for a later run (see copyOut)
    if (matches) f.held = true
    return matches
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
    if (f.where.at === 'pack' && this.pack !== undefined) {
      // written with its neighbours (see PackFile.write) on a descriptor open for the whole
      // download: no stat, no stamp per write (sync() takes the pack's once)
      await this.pack.write(span.index, this.layout.offsetInFile(piece), chunks, total)
      f.held = true
      return
    }
    await this.handles.use(span.index, async () => await this.openFile(span.index, true), async (fh) => {
      await writeFully(fh, this.partFile(span.index), this.layout.offsetInFile(piece), chunks, total)
      f.unflushed = true
      // the stamp the resume record describes, taken while the file is open: sync() then
      // reopens nothing (see sync)
      const st = await fh.stat()
      if (f.where.at === 'part') f.where = { at: 'part', stamp: stampOf(st) }
    })
    f.dirty = true
    f.held = true
  }

  /** The part files' and the pack's digest (see digestOf), from what this store knows of them. */
  private digest (): string {
    const parts: Array<{ index: number, stamp: Stamp }> = []
    for (const f of this.files) if (f.where.at === 'part') parts.push({ index: f.span.index, stamp: f.where.stamp })
    return digestOf(parts, this.pack?.stamp)
  }

  private newestMtime (): number {
    let newest = this.pack?.stamp.mtimeMs ?? 0
    for (const f of this.files) {
      const w = f.where
      const m = w.at === 'part' ? w.stamp.mtimeMs : w.at === 'final' ? (w.stamp?.mtimeMs ?? w.mtimeMs) : 0
      if (m > newest) newest = m
    }
    return newest
  }

  /**
   * fdatasync()s `f` (unless `datasync` is false: its file system was just synced) and takes its
   * stamp anew; flags are cleared first so a write meanwhile sets them again.
   */
  private async flush (f: FileState, datasync = true): Promise<Stats> {
    const index = f.span.index
    f.dirty = false
    const wasUnflushed = f.unflushed
    f.unflushed = false
    try {
      return await this.handles.use(index, async () => await this.openFile(index, false), async (fh) => {
        const st = await fh.stat()
        const where = f.where
        if (where.at === 'part' && !isStamp(st, where.stamp)) throw new StorageError(`${this.partFile(index)} was replaced during the download`)
        if (wasUnflushed && datasync) await fh.datasync()
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
    // the pack's stamp: one fstat for all the small files written since the last record
    await this.pack?.restamp()
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
   * nothing), then makes the folders on the way and links each part file there, and copies each
   * small file out of the pack (copyOut).
   */
  private async place (): Promise<void> {
    const staging = this.staging
    if (staging === undefined) return
    const chosen = [...this.selected].sort((a, b) => a - b).map(i => this.files[i])
    const toPlace = chosen.filter(f => f.where.at === 'part')
    const toCopy = chosen.filter(f => f.where.at === 'pack')
    // (a slot given in this run and never written is as empty as no part file)
    const unwritten = chosen.find(f => f.span.length > 0 && (f.where.at === 'nowhere' || (f.where.at === 'pack' && !f.held && this.pack?.isFresh(f.span.index) === true)))
    if (unwritten !== undefined) throw new StorageError(`cannot finalize ${this.path}: ${showPath(unwritten.span.path)} was never written`)

    // data on disk before the name says the file is complete (one syncfs for them all where it
    // can, see sync-fs.ts); and each part still the inode we wrote
    const own = new Map<number, Stats>()
    const unflushed = toPlace.filter(f => f.unflushed).length
    const synced = unflushed > 1 && this.fileSystemSync && fileSystemSyncUsable() && await syncFileSystem(staging.path)
    await forEachLimit(toPlace, FS_CONCURRENCY, async (f) => { own.set(f.span.index, await this.flush(f, !synced)) })

    const walk = new FolderWalk()
    const appeared = (path: string): StorageError =>
      new StorageError(`cannot finalize ${path}: something by that name appeared during the download (the verified data is left in ${staging.path})`)
    // every name first: a link or a file in the way is found before anything is placed (a
    // fresh download's folder is not there yet: nothing to look at but that)
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
    // (once for the pass, not once a file)
    if (toPlace.length > 0 || toCopy.length > 0) await this.checkStaging()
    // the small files come out of the pack through our descriptor: its name swapped for something
    // else means someone is at work in our staging folder, and nothing is taken out
    const pack = this.pack
    if (toCopy.length > 0) await pack?.check()

    await forEachLimit(chosen, FS_CONCURRENCY, async (f) => {
      if (f.where.at === 'final' || f.where.at === 'pack') return
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
    if (pack !== undefined) await this.copyOut(pack, toCopy, walk, appeared)
    for (const folder of this.emptyFolders) await walk.make([...this.foldersOf(folder), join(this.path, ...folder)])

    // the staging folder goes once empty; parts of files not selected stay for a later run
    await rmdir(staging.path).catch(() => {})
    this.finalized = true
    // a finished download goes on seeding what it has, read-only
    this.writable = false
  }

  /**
   * Copies each of `files` (small files with a slot in `pack`) out into a part file of its own and
   * gives it its final name, reading neighbouring slots in one call. First every file is written
   * (writeCopy), from the end of the pack down, cutting the pack short behind them as it goes, so
   * the copies and the pack together never take much more room than the files (and the pack's
   * pages, cut while still in memory, are never written to disk). Then the copies are made durable
   * together (one syncfs, see sync-fs.ts; one fdatasync each where that is not available), and
   * only then named (nameCopy). A crash before the names leaves part files the resume record
   * does not vouch for: they are fetched again, never trusted. Then the pack goes, unless it
   * holds bytes of files not placed now (an earlier run's files, not selected now): those stay
   * for a later run, and every other slot is given up.
   */
  private async copyOut (pack: PackFile, files: FileState[], walk: FolderWalk, appeared: (path: string) => StorageError): Promise<void> {
    interface Batch { lo: number, hi: number, left: number, bytes: Promise<Uint8Array> | undefined }
    interface Item { f: FileState, at: number, batch: Batch, own: Stats | undefined }
    const order: Item[] = []
    let batch: Batch | undefined
    for (const [f, at] of files.map(f => [f, pack.offsetOf(f.span.index)] as const).sort((a, b) => b[1] - a[1])) {
      if (batch === undefined || batch.hi - at > COPY_BATCH_BYTES) batch = { lo: at, hi: at + f.span.length, left: 0, bytes: undefined }
      batch.lo = at
      batch.left++
      order.push({ f, at, batch, own: undefined })
    }
    // slots of files not placed now that hold bytes: kept, and the pack never cut below their end
    const keep = pack.liveFiles().filter(i => !this.selected.has(i) && this.files[i].held)
    let floor = 0
    for (const i of keep) floor = Math.max(floor, pack.offsetOf(i) + this.layout.files[i].length)
    let cutAt = order.length > 0 ? order[0].at + order[0].f.span.length : 0
    const step = Math.max(PACK_CUT_MIN_BYTES, Math.ceil((cutAt - (order.at(-1)?.at ?? 0)) / PACK_CUT_STEPS))
    let cutting: Promise<void> | undefined
    let written = 0
    const cutBehind = (): void => {
      while (written < order.length && order[written].own !== undefined) written++
      if (written === 0 || cutting !== undefined) return
      // every slot from here up is copied (or no file's)
      const below = Math.max(order[written - 1].at, floor)
      if (cutAt - below < step) return
      cutAt = below
      // a pack that cannot be cut short just stays longer until it goes
      cutting = pack.cut(below).catch(() => {}).finally(() => { cutting = undefined })
    }
    const together = this.fileSystemSync && fileSystemSyncUsable()
    try {
      await forEachLimit(order, FS_CONCURRENCY, async (item) => {
        const b = item.batch
        b.bytes ??= pack.readExact(b.lo, b.hi - b.lo)
        let bytes: Uint8Array
        try {
          const all = await b.bytes
          bytes = all.subarray(item.at - b.lo, item.at - b.lo + item.f.span.length)
        } finally {
          if (--b.left === 0) b.bytes = undefined
        }
        item.own = await this.writeCopy(item.f, bytes, !together)
        // reads go to the copy from now on: the pack behind it is cut short
        item.f.where = { at: 'part', stamp: stampOf(item.own) }
        cutBehind()
      })
    } finally {
      await cutting
    }
    // data on disk before the names say the files are complete
    if (together && !(await syncFileSystem(this.staging?.path as string))) {
      await forEachLimit(order, FS_CONCURRENCY, async (item) => { await this.syncCopy(item.f, item.own as Stats) })
    }
    await forEachLimit(order, FS_CONCURRENCY, async (item) => { await this.nameCopy(item.f, item.own as Stats, walk, appeared) })
    for (const i of pack.liveFiles()) {
      if (keep.includes(i)) continue
      pack.drop(i)
      const f = this.files[i]
      if (f.where.at === 'pack') f.where = { at: 'nowhere' }
    }
    if (pack.liveCount > 0) {
      try {
        await pack.trim()
      } catch (err) {
        throw new StorageError(`cannot write to ${pack.path}: ${errno(err)}`)
      }
      return
    }
    this.pack = undefined
    await pack.remove()
  }

  /**
   * Writes the small file `f`'s verified `bytes` (from the pack) to a part file of its own, made
   * exclusively, never through a link, and fdatasync()s it if `sync`; returns its stats.
   */
  private async writeCopy (f: FileState, bytes: Uint8Array, sync: boolean): Promise<Stats> {
    const part = this.partFile(f.span.index)
    if (this.inline.on) await this.inline.pace()
    const io = this.inline.io
    let fd: number
    try {
      fd = await createFresh(io, part)
    } catch (err) {
      throw new StorageError(`cannot write to ${part}: ${errno(err)}`)
    }
    try {
      for (let done = 0; done < bytes.length;) {
        const n = await io.write(fd, bytes, done, bytes.length - done, done)
        if (n === 0) throw new Error('wrote 0 bytes')
        done += n
      }
      // (on the pool: it waits for the disk)
      if (sync) await fdatasyncOnPool(fd)
      return await io.fstat(fd)
    } catch (err) {
      throw new StorageError(`cannot write to ${part}: ${errno(err)}`)
    } finally {
      await io.close(fd).catch(() => {})
    }
  }

  /** fdatasync()s the part file writeCopy made for `f` (`own`), when a whole file system could not be synced. */
  private async syncCopy (f: FileState, own: Stats): Promise<void> {
    const part = this.partFile(f.span.index)
    const { O_RDONLY, O_NOFOLLOW } = fsConstants
    try {
      const fh = await open(part, O_RDONLY | O_NOFOLLOW)
      try {
        if (!sameFile(await fh.stat(), own)) throw new StorageError(`cannot finalize ${this.finalPath(f.span)}: ${part} was replaced during the download by a file that was not verified`)
        await fh.datasync()
      } finally {
        await fh.close()
      }
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot sync ${part}: ${errno(err)}`)
    }
  }

  /**
   * Gives the part file writeCopy made for `f` (`own`, its bytes on disk) the final name, never
   * replacing anything there and checking the name went to the file we wrote (linkCopy), then
   * removes the part name.
   */
  private async nameCopy (f: FileState, own: Stats, walk: FolderWalk, appeared: (path: string) => StorageError): Promise<void> {
    const final = this.finalPath(f.span)
    await walk.make(this.foldersOf(f.span.path))
    const part = this.partFile(f.span.index)
    if (this.inline.on) await this.inline.pace()
    const io = this.inline.io
    try {
      await linkCopy(io, part, final, own, appeared)
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot finalize ${final}: ${errno(err)}`)
    }
    f.where = { at: 'final', stamp: stampOf(own), mtimeMs: own.mtimeMs }
    await io.unlink(part).catch(() => {})
  }

  get partPath (): string | undefined {
    return this.staging === undefined || this.finalized ? undefined : this.staging.path
  }

  async close (): Promise<void> {
    this.closed = true
    this.writable = false
    await this.handles.closeAll()
    await this.pack?.close()
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
  return layout.files.map(span => ({ span, where: { at: 'nowhere' }, dirty: false, unflushed: false, held: false }))
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
  const inline = new InlineCalls(options.inlineCalls ?? true)
  await forEachLimit([...selected], FS_CONCURRENCY, async (i) => {
    const span = spec.layout.files[i]
    const path = join(dir, ...span.path)
    let fst: Stats
    try {
      if (inline.on) await inline.pace()
      fst = await inline.io.lstat(path)
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
    path: dir, spec, files, selected, existing: new Set(), staging: undefined, pack: undefined, emptyFolders: [],
    maxOpenFiles: maxOpenOf(options), reusedPart: false, inline, fileSystemSync: false
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
 * Finds an earlier run's part files among the staging folder's `names` and keeps those that are
 * ours; removes names that are not (a symlink, a file with other hard links or another owner, a
 * part of no file of this manifest): the names only, never what they point at. A part file of a
 * file with a slot in the pack is what an interrupted finalize left while copying the file out:
 * the pack still has its bytes, and the part goes.
 */
async function scanStaging (staging: string, names: string[], layout: Layout, files: FileState[]): Promise<number> {
  let kept = 0
  await forEachLimit(names.filter(name => PART_NAME.test(name)), FS_CONCURRENCY, async (name) => {
    const path = join(staging, name)
    const span = layout.files[Number(name)]
    const st = await lstatOrUndefined(path)
    if (st === undefined) return
    const uid = ownUid()
    const foreign = st.isSymbolicLink() || (st.isFile() && (st.nlink !== 1 || (uid !== undefined && st.uid !== uid)))
    if (span === undefined || span.length === 0 || foreign || files[span.index].where.at === 'pack') {
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
  const packUpTo = options.packFilesUpTo ?? DEFAULT_PACK_FILES_UP_TO
  if (!Number.isSafeInteger(packUpTo) || packUpTo < 0) throw new StorageError(`packFilesUpTo must be a whole number >= 0, got ${packUpTo}`)
  const stagingPath = stagingPathOf(outDir, key)
  const packPath = join(stagingPath, PACK_NAME)
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
  let pack: PackFile | undefined
  let packed = 0
  const inline = new InlineCalls(options.inlineCalls ?? true)
  try {
    stagingStamp = await prepareStaging(outDir, stagingPath)
    const names = await readdir(stagingPath)
    if (names.includes(PACK_NAME)) {
      pack = await PackFile.open(packPath, spec.layout, inline)
      for (const i of pack.liveFiles()) files[i].where = { at: 'pack' }
      packed = pack.liveCount
    }
    kept = await scanStaging(stagingPath, names, spec.layout, files)
  } catch (err) {
    await pack?.close()
    if (err instanceof StorageError) throw err
    throw new StorageError(`cannot write to ${outDir}: ${errno(err)}`)
  }

  try {
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
        // a slot in the pack is only a copy: a finalize cut short may have placed the file already
        if ((f.where.at === 'nowhere' || f.where.at === 'pack') && there.isFile() && there.size === f.span.length) {
          f.where = { at: 'final', stamp: undefined, mtimeMs: there.mtimeMs }
          pack?.drop(i)
          existing.add(i)
          continue
        }
        throw new StorageError(`${final} already exists: move it away first`)
      }
    }

    // the selected small files with nowhere else to be get a slot in the pack
    const toPack = [...selected].sort((a, b) => a - b).filter(i => {
      const f = files[i]
      return f.where.at === 'nowhere' && f.span.length > 0 && f.span.length <= packUpTo
    })
    try {
      if (toPack.length > 0) pack ??= await PackFile.open(packPath, spec.layout, inline)
      if (pack !== undefined) {
        for (const i of toPack) if (pack.add(i)) files[i].where = { at: 'pack' }
        if (pack.liveCount > 0) {
          await pack.commit()
        } else {
          await pack.remove()
          pack = undefined
        }
      }
    } catch (err) {
      throw new StorageError(`cannot write to ${packPath}: ${errno(err)}`)
    }

    return new FolderPieceStore({
      path: root,
      spec,
      files,
      selected,
      existing,
      staging: { path: stagingPath, stamp: stagingStamp },
      pack,
      emptyFolders,
      maxOpenFiles,
      reusedPart: kept > 0 || existing.size > 0 || packed > 0,
      inline,
      fileSystemSync: options.fileSystemSync ?? true
    })
  } catch (err) {
    await pack?.close()
    throw err
  }
}
