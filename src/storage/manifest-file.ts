/**
 * Manifests on disk: make one by reading and hashing a file or a folder, read one, write one
 * atomically. The manifest itself (format, validation, CID) is pure and lives in
 * ../manifest/manifest.ts.
 */
import { createHash, type Hash } from 'node:crypto'
import * as fs from 'node:fs'
import { open } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { CID } from 'multiformats/cid'
import {
  choosePieceLength, comparePaths, decodeManifest, encodeManifest, folderManifest, HASH_LENGTH, InvalidManifestError,
  isPowerOfTwo, manifestCid, manifestLayout, MAX_DEPTH, MAX_FILES, MAX_MANIFEST_BYTES, MAX_PATH_BYTES, MAX_PIECE_LENGTH,
  MIN_PIECE_LENGTH, nameProblem, type Manifest
} from '../manifest/manifest.js'
import { writeFileAtomic } from './atomic-file.js'

/**
 * Bytes per read: big enough that a 1 GiB file is ~1,000 reads (each a trip through libuv's
 * thread pool), small enough that HASH_WORKERS x 2 buffers stay at 16 MiB.
 */
const READ_CHUNK = 1024 * 1024
/**
 * Files hashed at once. Hashing runs on the main thread (OpenSSL's SHA-256, ~3.5x sha256sum
 * here), opens, reads and closes on libuv's 4 threads: 8 files in flight keep both busy for
 * small files. A large file is read one chunk ahead of its hashing.
 */
const HASH_WORKERS = 8
/** readdir and lstat calls in flight while walking a folder */
const WALK_WORKERS = 16
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants
// never follow a link for reading, and never block opening a FIFO put in a file's place
const OPEN_FLAGS = O_RDONLY | (O_NOFOLLOW ?? 0) | (O_NONBLOCK ?? 0)

/** A file or folder that cannot be shared: a symbolic link, a special file, a name we refuse. */
export class UnsupportedEntryError extends Error {
  override name = 'UnsupportedEntryError'
  constructor (readonly path: string, why: string) {
    super(`cannot share ${path}: ${why}`)
  }
}

/** A file changed size while it was being hashed: its manifest would describe no version of it. */
export class FileChangedError extends Error { override name = 'FileChangedError' }

/** How far createManifest has got; the totals are known once the walk is done. */
export interface CreateManifestProgress {
  /** files hashed to the end */
  files: number
  totalFiles: number
  /** bytes hashed */
  bytes: number
  totalBytes: number
}

export interface CreateManifestOptions {
  /** a power of two in [MIN_PIECE_LENGTH, MAX_PIECE_LENGTH]; default: choosePieceLength(total bytes) */
  pieceLength?: number
  /** the manifest's name; default: the file's or folder's own name */
  name?: string
  signal?: AbortSignal
  /** called after the walk, then after every chunk read and every file hashed */
  onProgress?: (progress: CreateManifestProgress) => void
}

export interface CreatedManifest { manifest: Manifest, bytes: Uint8Array, cid: CID }

// "ENOENT (no such file or directory)": the code for scripts, the words for people
function describe (e: NodeJS.ErrnoException): string {
  if (e.code === undefined) return e.message
  const words = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message
  return `${e.code} (${words})`
}

/** Turn an fs error into one that names the file; the errno code stays available on `.code`. */
function readError (path: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException
  // only system errors: ours, and an abort's DOMException (whose `code` is a number), pass as they are
  if (typeof e?.code !== 'string') return err as Error
  const out: NodeJS.ErrnoException = new Error(`cannot read ${path}: ${describe(e)}`, { cause: err })
  out.code = e.code
  return out
}

// The callback API, promised by hand: a third cheaper per call than fs/promises and its
// FileHandles, which counts at thousands of small files a second.
function fsCall<T> (call: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => { if (err !== null) reject(err); else resolve(value) }))
}
const openFd = async (path: string, flags: number): Promise<number> => await fsCall(done => fs.open(path, flags, done))
const readFd = async (fd: number, buf: Buffer, length: number, position: number): Promise<number> =>
  await fsCall(done => fs.read(fd, buf, 0, length, position, done))
const fstatFd = async (fd: number): Promise<fs.Stats> => await fsCall(done => fs.fstat(fd, done))
const closeFd = async (fd: number): Promise<void> => { await new Promise<void>(resolve => fs.close(fd, () => resolve())) }
const lstatPath = async (path: string): Promise<fs.Stats> => await fsCall(done => fs.lstat(path, done))
const readdirPath = async (path: string): Promise<Array<fs.Dirent<Buffer>>> =>
  await fsCall(done => fs.readdir(path, { withFileTypes: true, encoding: 'buffer' }, done))

function checkPieceLength (pieceLength: number): void {
  if (!isPowerOfTwo(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
    throw new InvalidManifestError(`pieceLength must be a power of two in [${MIN_PIECE_LENGTH}, ${MAX_PIECE_LENGTH}], got ${pieceLength}`)
  }
}

/**
 * The manifest of a file (version 1, the bytes and CID of every earlier bitswarm) or of a folder
 * (version 2: its files and empty folders, see ../manifest/manifest.ts). The same file or folder
 * gives the same CID on any machine. The path given is followed if it is a link; inside a
 * folder, links and special files are refused (UnsupportedEntryError), never followed.
 */
export async function createManifest (path: string, options: CreateManifestOptions = {}): Promise<CreatedManifest> {
  options.signal?.throwIfAborted()
  const name = options.name ?? basename(resolve(path))
  const nameErr = nameProblem(name)
  if (nameErr !== undefined) throw new InvalidManifestError(nameErr)
  if (options.pieceLength !== undefined) checkPieceLength(options.pieceLength)

  let fd: number
  try {
    fd = await openFd(path, O_RDONLY | (O_NONBLOCK ?? 0))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') return await createFolderManifest(path, name, options)
    throw readError(path, err)
  }
  let manifest: Manifest
  try {
    // stat the open file, not the path: the size and the bytes we hash belong to one file
    const st = await fstatFd(fd).catch((err: unknown) => { throw readError(path, err) })
    if (st.isDirectory()) {
      await closeFd(fd)
      fd = -1
      return await createFolderManifest(path, name, options)
    }
    if (!st.isFile()) throw new UnsupportedEntryError(path, 'not a regular file or folder')
    const length = st.size
    const pieceLength = options.pieceLength ?? choosePieceLength(length)
    const pieces = new Uint8Array(Math.ceil(length / pieceLength) * HASH_LENGTH)
    manifest = { version: 1, name, length, pieceLength, pieces }
    // over the cap fails now, with the hashes still zero, not after hashing
    encodeManifest(manifest)
    const progress: CreateManifestProgress = { files: 0, totalFiles: 1, bytes: 0, totalBytes: length }
    options.onProgress?.({ ...progress })
    await hashFile(fd, path, length, pieceLength, pieces, 0, readBuffers(), (n) => {
      progress.bytes += n
      options.onProgress?.({ ...progress })
    }, options.signal)
    progress.files = 1
    options.onProgress?.({ ...progress })
  } finally {
    if (fd >= 0) await closeFd(fd)
  }
  const bytes = encodeManifest(manifest)
  return { manifest, bytes, cid: await manifestCid(bytes) }
}

/** Two read buffers, reused file after file by one hashing worker. */
function readBuffers (): [Buffer, Buffer] {
  return [Buffer.allocUnsafeSlow(READ_CHUNK), Buffer.allocUnsafeSlow(READ_CHUNK)]
}

/**
 * Hash the `length` bytes of open file `fd` into pieces, written to `pieces` from `firstPiece` on.
 * Reads one chunk ahead of the hashing (two buffers), and asks one byte past the expected end so
 * that a file that grew is noticed without another read.
 */
async function hashFile (
  fd: number, path: string, length: number, pieceLength: number, pieces: Uint8Array, firstPiece: number,
  buffers: [Buffer, Buffer], onBytes: (n: number) => void, signal: AbortSignal | undefined
): Promise<void> {
  let position = 0 // bytes read so far
  let piece = firstPiece
  let inPiece = 0 // bytes of the current piece hashed so far
  let hash: Hash | undefined
  const read = (buf: Buffer, at: number): { want: number, done: Promise<number> } => {
    const want = Math.min(buf.length, length - at + 1)
    return { want, done: readFd(fd, buf, want, at) }
  }
  let current = 0
  let pending: { want: number, done: Promise<number> } | undefined = read(buffers[0], 0)
  try {
    while (pending !== undefined) {
      const { want, done } = pending
      pending = undefined
      const n = await done
      if (n === 0) break
      if (position + n > length) throw new FileChangedError(`${path} grew while reading (more than ${length} bytes)`)
      const chunk = buffers[current]
      position += n
      signal?.throwIfAborted()
      // a short read that ends at the expected length is the end of the file: no extra read
      if (!(position === length && n < want)) {
        current ^= 1
        pending = read(buffers[current], position)
      }
      // a chunk may end mid-piece or span several pieces
      let pos = 0
      while (pos < n) {
        const take = Math.min(pieceLength - inPiece, n - pos)
        hash ??= createHash('sha256')
        hash.update(chunk.subarray(pos, pos + take))
        pos += take
        inPiece += take
        if (inPiece === pieceLength) {
          pieces.set(hash.digest(), piece * HASH_LENGTH)
          piece++
          inPiece = 0
          hash = undefined
        }
      }
      onBytes(n)
    }
  } catch (err) {
    throw readError(path, err)
  } finally {
    // the buffers go to the next file: no read may still be writing into them
    if (pending !== undefined) await pending.done.catch(() => {})
  }
  if (position !== length) throw new FileChangedError(`${path} shrank while reading (${position} of ${length} bytes)`)
  if (hash !== undefined) pieces.set(hash.digest(), piece * HASH_LENGTH)
}

/** A file found by the walk: its path inside the folder and on disk, and its size then. */
interface WalkedFile { path: string[], abs: string, length: number }

/** A name from the file system as a string: refused unless it is UTF-8 and a valid name. */
function componentOf (raw: Buffer, dir: string): string {
  const name = raw.toString('utf8')
  if (!Buffer.from(name, 'utf8').equals(raw)) {
    throw new UnsupportedEntryError(join(dir, name), `the name is not UTF-8 (bytes ${raw.toString('hex')})`)
  }
  const problem = nameProblem(name)
  if (problem !== undefined) throw new UnsupportedEntryError(join(dir, name), problem)
  return name
}

type Kinded = Pick<fs.Dirent, 'isBlockDevice' | 'isCharacterDevice' | 'isFIFO' | 'isSocket'>
function kindOf (e: Kinded): string {
  if (e.isFIFO()) return 'a FIFO'
  if (e.isSocket()) return 'a socket'
  if (e.isCharacterDevice()) return 'a character device'
  if (e.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}

const symlinkWhy = 'a symbolic link (links are not followed)'
const specialWhy = (e: Kinded): string => `${kindOf(e)}: only regular files and folders can be shared`

/**
 * Every file and empty folder under `root`, sorted byte-wise by path components, within the
 * limits a downloader applies (MAX_FILES, MAX_DEPTH, MAX_PATH_BYTES): refused here, before any
 * hashing, naming the path that broke them.
 *
 * Names are taken as the file system gives them, byte for byte, not Unicode-normalised (no NFC):
 * a seeder must be able to open every path it lists, and on Linux an NFC and an NFD name are two
 * different files. BitTorrent clients do the same. So a folder keeps its CID wherever its names
 * keep their bytes (copies, tar, zip, git, rsync, APFS); one copied through a normalising file
 * system (HFS+ stores NFD) is, byte-wise, another folder and gets another CID.
 */
async function walk (root: string, signal: AbortSignal | undefined): Promise<{ files: WalkedFile[], folders: string[][], total: number }> {
  const files: WalkedFile[] = []
  const folders: string[][] = []
  let total = 0
  let pathBytes = 0
  const leaf = (path: string[], abs: string): void => {
    if (files.length + folders.length >= MAX_FILES) {
      throw new UnsupportedEntryError(abs, `the folder holds more than ${MAX_FILES} files and empty folders`)
    }
    pathBytes += Buffer.byteLength(path.join('/'), 'utf8')
    if (pathBytes > MAX_PATH_BYTES) throw new UnsupportedEntryError(abs, `the folder's paths take more than ${MAX_PATH_BYTES} bytes`)
  }
  const addFile = (path: string[], abs: string, st: fs.Stats): void => {
    if (st.isSymbolicLink()) throw new UnsupportedEntryError(abs, symlinkWhy)
    if (!st.isFile()) throw new UnsupportedEntryError(abs, specialWhy(st))
    leaf(path, abs)
    files.push({ path, abs, length: st.size })
    total += st.size
    if (!Number.isSafeInteger(total)) throw new UnsupportedEntryError(abs, 'the files add up to more than 2^53 - 1 bytes')
  }

  // work to do: folders to list, and entries whose size (or type) needs an lstat
  interface Task { abs: string, path: string[], list: boolean }
  const tasks: Task[] = [{ abs: root, path: [], list: true }]
  const run = async ({ abs, path, list }: Task): Promise<void> => {
    if (!list) {
      // lstat, never stat: a link is refused, not followed
      const st = await lstatPath(abs).catch((err: unknown) => { throw readError(abs, err) })
      if (st.isDirectory()) tasks.push({ abs, path, list: true })
      else addFile(path, abs, st)
      return
    }
    const entries = await readdirPath(abs).catch((err: unknown) => { throw readError(abs, err) })
    // an empty folder is kept, unless it is the root: an empty root is an empty manifest
    if (entries.length === 0 && path.length > 0) {
      leaf(path, abs)
      folders.push(path)
    }
    for (const entry of entries) {
      const name = componentOf(entry.name, abs)
      const child = join(abs, name)
      const childPath = [...path, name]
      if (childPath.length > MAX_DEPTH) throw new UnsupportedEntryError(child, `more than ${MAX_DEPTH} folders deep`)
      if (entry.isDirectory()) tasks.push({ abs: child, path: childPath, list: true })
      else if (entry.isSymbolicLink()) throw new UnsupportedEntryError(child, symlinkWhy)
      else if (entry.isFIFO() || entry.isSocket() || entry.isCharacterDevice() || entry.isBlockDevice()) throw new UnsupportedEntryError(child, specialWhy(entry))
      else tasks.push({ abs: child, path: childPath, list: false }) // a file, or a type not told
    }
  }
  await pool(WALK_WORKERS, tasks, run, signal)
  files.sort((x, y) => comparePaths(x.path, y.path))
  folders.sort(comparePaths)
  return { files, folders, total }
}

/**
 * Run `run` on every task of `tasks` (which running tasks may add to) with at most `width` at
 * once. The first error, or `signal`, stops it: no new task starts, `stop` tells the running ones,
 * and it throws once they have ended, so nothing is left running when it answers.
 */
async function pool<T> (width: number, tasks: T[], run: (task: T, stop: AbortSignal) => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  let active = 0
  let failed: { err: unknown } | undefined
  const stop = new AbortController()
  const fail = (err: unknown): void => {
    failed ??= { err }
    stop.abort(failed.err)
    wake()
  }
  let idle: Array<() => void> = []
  const wake = (): void => { const w = idle; idle = []; for (const f of w) f() }
  const onAbort = (): void => fail(signal?.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  const worker = async (): Promise<void> => {
    while (failed === undefined) {
      const task = tasks.pop()
      if (task === undefined) {
        if (active === 0) { wake(); return }
        // others may still add tasks
        await new Promise<void>(resolve => idle.push(resolve))
        continue
      }
      active++
      try {
        await run(task, stop.signal)
      } catch (err) {
        fail(err)
      } finally {
        active--
        wake()
      }
    }
  }
  try {
    signal?.throwIfAborted()
    await Promise.all(Array.from({ length: width }, worker))
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
  if (failed !== undefined) throw failed.err
}

async function createFolderManifest (root: string, name: string, options: CreateManifestOptions): Promise<CreatedManifest> {
  const { signal } = options
  const walked = await walk(root, signal)
  const pieceLength = options.pieceLength ?? choosePieceLength(walked.total)
  const manifest = folderManifest({ name, pieceLength, files: walked.files, folders: walked.folders, pieces: new Uint8Array(0) })
  const layout = manifestLayout(manifest)
  manifest.pieces = new Uint8Array(layout.pieceCount * HASH_LENGTH)
  // validate and size it now, with the hashes still zero: a manifest over the cap or one peers
  // would refuse fails here, not after hours of hashing
  encodeManifest(manifest)

  const progress: CreateManifestProgress = { files: 0, totalFiles: walked.files.length, bytes: 0, totalBytes: walked.total }
  options.onProgress?.({ ...progress })
  const onBytes = (n: number): void => {
    progress.bytes += n
    options.onProgress?.({ ...progress })
  }
  // the files in reverse, as the pool takes from the end: hashed in manifest order, roughly
  const tasks = walked.files.map((file, i) => ({ file, firstPiece: layout.files[i].firstPiece })).reverse()
  const spare: Array<[Buffer, Buffer]> = []
  await pool(Math.min(HASH_WORKERS, tasks.length), tasks, async ({ file, firstPiece }, stop) => {
    const fd = await openFd(file.abs, OPEN_FLAGS).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsupportedEntryError(file.abs, symlinkWhy)
      throw readError(file.abs, err)
    })
    const buffers = spare.pop() ?? readBuffers()
    try {
      await hashFile(fd, file.abs, file.length, pieceLength, manifest.pieces, firstPiece, buffers, onBytes, stop)
    } finally {
      spare.push(buffers)
      await closeFd(fd)
    }
    progress.files++
    options.onProgress?.({ ...progress })
  }, signal)
  const bytes = encodeManifest(manifest)
  return { manifest, bytes, cid: await manifestCid(bytes) }
}

export async function readManifestFile (path: string): Promise<CreatedManifest> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw readError(path, err)
  }
  let bytes: Uint8Array
  try {
    const st = await fh.stat()
    if (st.isDirectory()) throw readError(path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }))
    // check the size before reading so a huge file is never loaded
    if (st.size > MAX_MANIFEST_BYTES) throw new InvalidManifestError(`${path}: manifest is ${st.size} bytes, more than ${MAX_MANIFEST_BYTES}`)
    bytes = new Uint8Array(await fh.readFile())
  } finally {
    await fh.close()
  }
  let manifest: Manifest
  try {
    manifest = decodeManifest(bytes)
  } catch (err) {
    if (err instanceof InvalidManifestError) throw new InvalidManifestError(`${path}: ${err.message}`)
    throw err
  }
  return { manifest, bytes, cid: await manifestCid(bytes) }
}

export async function writeManifestFile (path: string, bytes: Uint8Array): Promise<void> {
  // readers never see a half-written manifest
  try {
    await writeFileAtomic(path, bytes)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const out: NodeJS.ErrnoException = new Error(`cannot write ${path}: ${describe(e)}`, { cause: err })
    if (e.code !== undefined) out.code = e.code
    throw out
  }
}
