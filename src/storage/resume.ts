/**
 * Resuming a download. Next to the part file, a resume record lists the pieces already
 * verified and written, with the part file's size and mtime at that moment; it is replaced
 * atomically (temp file + rename) after the data it describes has been flushed to disk.
 *
 * On restart (as libtorrent does with its resume data): if the record names this manifest and
 * the part file's size and mtime still match, only the pieces it lists are hashed again (the
 * fast path); otherwise, after a crash (`kill -9` leaves writes newer than the record) or an
 * edit, every piece on disk is. Size and mtime are not proof: anyone who can write the file can
 * put its mtime back. Hashing what the record vouches for costs at most an eighth of what
 * fetching it did (SHA-256 runs at ~1.6 GB/s, the swarm at ≤ 200 MB/s), once per start. Either
 * way nothing is trusted that was not verified in this run, and only the rest is fetched.
 *
 * A folder download (folder-store.ts) has a staging folder of part files, one per file, instead of
 * one part file. Its record (same name, `<out>/.bitswarm-<cid>.resume`) keeps, in place of size and
 * mtime, `parts`: a digest of every part file's index, size, mtime and inode, so a write to any of
 * them after the record (or one added, removed or replaced) sends the restart down the slow path.
 * A single file's record is unchanged: {"version":1,"cid","size","mtimeMs","pieces"}; a folder's
 * is {"version":1,"cid","parts","pieces"}. Neither can pass for the other: a file record needs a
 * regular file at the part path, a folder record a folder.
 */
import { constants as fsConstants } from 'node:fs'
import { lstat, open, rm } from 'node:fs/promises'
import { writeFileAtomic } from './atomic-file.js'
import { Bitfield } from '../bitfield.js'
import { pieceCount, type Manifest } from '../manifest/manifest.js'
import { stagingDigest } from './folder-store.js'
import { PART_SUFFIX, PARTS_SUFFIX, type PieceStore } from './storage.js'

const RESUME_SUFFIX = '.resume'
const VERSION = 1
/** a record is a few hundred bytes plus the bitfield in base64: refuse anything much larger */
const MAX_RECORD_BYTES = 1024 * 1024

interface ResumeRecord {
  version: number
  cid: string
  /** a single file's part file: its size and mtime */
  size?: number
  mtimeMs?: number
  /** a folder's staging folder: the digest of its part files (see stagingDigest) */
  parts?: string
  /** the verified pieces: the bitfield's bytes, base64 */
  pieces: string
}

/** `<out>/.bitswarm-<cid>.resume`, for a part file or a staging folder alike */
function resumePathOf (partPath: string): string {
  for (const suffix of [PART_SUFFIX, PARTS_SUFFIX]) {
    if (partPath.endsWith(suffix)) return partPath.slice(0, -suffix.length) + RESUME_SUFFIX
  }
  return partPath + RESUME_SUFFIX
}

/** The number of pieces: a manifest's, or given as is (a folder store's layout.pieceCount). */
function countOf (pieces: Manifest | number): number {
  return typeof pieces === 'number' ? pieces : pieceCount(pieces)
}

/** A small regular file's text, read without following a symlink or blocking on a FIFO. */
async function readSmallFile (path: string, max: number): Promise<string> {
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
  try {
    const st = await fh.stat()
    if (!st.isFile() || st.size > max) throw new Error(`${path}: not a resume record`)
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}

/**
 * The pieces a resume record vouches for, or undefined when the record is missing or stale.
 * A claim, not proof: pass it to verifyStore, which hashes those pieces. `partPath` is the
 * store's partPath (a part file, or a folder download's staging folder); `manifest` may be given
 * as its number of pieces.
 */
export async function readResume (partPath: string, cid: string, manifest: Manifest | number): Promise<Bitfield | undefined> {
  let record: ResumeRecord
  try {
    record = JSON.parse(await readSmallFile(resumePathOf(partPath), MAX_RECORD_BYTES)) as ResumeRecord
    if (record.version !== VERSION || record.cid !== cid) return undefined
    if (typeof record.parts === 'string') {
      // a folder: every part file as it was when the record was written
      if (record.parts !== await stagingDigest(partPath)) return undefined
    } else {
      const st = await lstat(partPath)
      if (!st.isFile()) return undefined
      if (record.size !== st.size || record.mtimeMs !== st.mtimeMs) return undefined
    }
    return Bitfield.fromBytes(countOf(manifest), Buffer.from(record.pieces, 'base64'))
  } catch {
    // missing, unreadable, truncated or malformed: not to be trusted
    return undefined
  }
}

/** Flushes the part file (or files), then records `have` with their state, atomically. */
export async function writeResume (store: PieceStore, cid: string, have: Bitfield): Promise<void> {
  const partPath = store.partPath
  if (partPath == null) return
  const { size, mtimeMs, parts } = await store.sync()
  const pieces = Buffer.from(have.toBytes()).toString('base64')
  // key order is the format: a single file's record stays byte for byte what it always was
  const record: ResumeRecord = parts === undefined ? { version: VERSION, cid, size, mtimeMs, pieces } : { version: VERSION, cid, parts, pieces }
  await writeFileAtomic(resumePathOf(partPath), JSON.stringify(record))
}

async function removeResume (partPath: string): Promise<void> {
  await rm(resumePathOf(partPath), { force: true })
}

/** Pieces hashed at once by verifyStore (libuv's thread pool has 4 threads by default). */
const VERIFY_CONCURRENCY = 4

/**
 * Hashes the pieces on disk (every one, or only `only`'s) and returns the ones that match the
 * manifest; a few at once, as reads and hashes run on the thread pool (memory stays at a few
 * pieces). Zero-filled holes of a sparse part file simply fail to verify. `manifest` may be
 * given as its number of pieces.
 */
export async function verifyStore (store: PieceStore, manifest: Manifest | number, only?: Bitfield): Promise<Bitfield> {
  const n = countOf(manifest)
  const have = new Bitfield(n)
  const todo: number[] = []
  for (let i = 0; i < n; i++) if (only === undefined || only.get(i)) todo.push(i)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const i = todo[next++]
      if (await store.verifyPiece(i)) have.set(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(VERIFY_CONCURRENCY, todo.length) }, worker))
  return have
}

/**
 * Keeps the resume record current while a download runs: at most one write a second (each
 * flushes the part file first), one more when asked to flush (on exit).
 */
export class ResumeWriter {
  private readonly store: PieceStore
  private readonly cid: string
  private readonly have: () => Bitfield
  private readonly log: (msg: string) => void
  private readonly delayMs: number
  private timer: ReturnType<typeof setTimeout> | undefined
  private writing: Promise<void> = Promise.resolve()
  private failed = false

  constructor (init: { store: PieceStore, cid: string, have: () => Bitfield, log?: (msg: string) => void, delayMs?: number }) {
    this.store = init.store
    this.cid = init.cid
    this.have = init.have
    this.log = init.log ?? (() => {})
    this.delayMs = init.delayMs ?? 1000
  }

  /** A piece was written: record it soon. */
  touch (): void {
    if (this.timer != null) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, this.delayMs)
    this.timer.unref?.()
  }

  /** Writes the record now (after any write under way). Never throws: the record is an optimisation. */
  async flush (): Promise<void> {
    if (this.timer != null) { clearTimeout(this.timer); this.timer = undefined }
    this.writing = this.writing.then(async () => {
      if (this.store.partPath == null) return
      try {
        await writeResume(this.store, this.cid, this.have())
        this.failed = false
      } catch (err) {
        // a full disk, say: the download goes on, and a later run re-hashes instead
        if (!this.failed) this.log(`cannot write the resume record: ${(err as Error).message}`)
        this.failed = true
      }
    })
    await this.writing
  }

  /** The download is complete: no record is needed any more. */
  async done (partPath: string): Promise<void> {
    if (this.timer != null) { clearTimeout(this.timer); this.timer = undefined }
    await this.writing
    await removeResume(partPath).catch(() => {})
  }
}
