import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { layoutOf, type Layout } from './layout.js'
import { comparePaths, isPathPrefix, nameProblem, showPath } from './names.js'

export const HASH_LENGTH = 32 // SHA-256
export const MIN_PIECE_LENGTH = 16384

// choosePieceLength never goes above this; decode accepts up to MAX_PIECE_LENGTH so a manifest
// made with an explicit larger piece length still loads
const CHOSEN_MAX_PIECE_LENGTH = 16 * 1024 * 1024
export const MAX_PIECE_LENGTH = 64 * 1024 * 1024
const TARGET_PIECES = 2000
/**
 * A manifest arrives from untrusted peers: bound it before the CBOR decoder allocates anything.
 * The one cap for making, reading, serving and fetching a manifest (the exchange sizes its
 * stream buffers from it): about 262,000 pieces.
 */
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024
/**
 * Bounds on a folder manifest. The 8 MiB byte cap alone would still let a peer send over a million
 * empty folders (4 bytes each) or one path millions of folders deep; each entry costs the
 * downloader file-system calls and a few hundred bytes of memory, so bound them one by one.
 *
 * MAX_FILES counts files and empty folders together (each is an entry the downloader creates):
 * 100,000 is about a Linux kernel tree and 10x the 10,000-file benchmark. Real paths
 * (~30 bytes) cost ~75 bytes an entry with their hash, so a real tree meets the 8 MiB cap near
 * this count too: each bound is the tighter one for some hostile shape, neither hurts real trees.
 */
export const MAX_FILES = 100_000
/**
 * Components in one path. Real trees stay far shallower (a deep node_modules is ~20 levels);
 * each level is a folder the downloader creates and checks for planted links, so depth is work
 * per file. 64 keeps one path under 16 KiB (64 x 255 bytes).
 */
export const MAX_DEPTH = 64
/**
 * Bytes of all paths together (UTF-8, components joined by '/'), files and folders. Half the byte
 * cap, ~40 bytes a path at MAX_FILES entries (real trees average less): a manifest cannot be
 * mostly names, and each copy of the paths a downloader keeps (layout, store, selection, joined
 * file names) stays a few MiB.
 */
export const MAX_PATH_BYTES = 4 * 1024 * 1024

const FILE_KEYS = ['version', 'name', 'length', 'pieceLength', 'pieces']
const FOLDER_KEYS = ['version', 'name', 'pieceLength', 'files', 'folders', 'pieces']
const ENTRY_KEYS = ['path', 'length']

/** A single file (version 1): its bytes and CID are those of every earlier bitswarm. */
export interface FileManifest {
  version: 1
  name: string // one path component: no '/', '\\', NUL; not '.' or '..'; 1..255 bytes UTF-8
  length: number // bytes, safe integer >= 0
  pieceLength: number // power of two >= MIN_PIECE_LENGTH
  pieces: Uint8Array // concatenated SHA-256 digests, ceil(length/pieceLength) * 32 bytes
}

/** One file of a folder manifest. */
export interface FolderFile {
  /** path inside the folder, as components (each obeys the rules of a name) */
  readonly path: readonly string[]
  /** bytes, safe integer >= 0 */
  readonly length: number
}

/**
 * A folder (version 2), encoded as the DAG-CBOR map
 *   {version: 2, name, pieceLength, files: [{path: [component, ...], length}, ...],
 *    folders: [[component, ...], ...], pieces}
 * every field present, nothing else. `files` and `folders` are each sorted byte-wise by path
 * components (UTF-8 bytes, a folder right before what it holds) without duplicates, so a folder
 * has one encoding and one CID; `folders` lists only the empty folders (the others are implied
 * by their files), and no path is both a file and a folder. `pieces`: each file cut into pieces of
 * `pieceLength` on its own, starting on a piece boundary (layout.ts). `length` is derived from
 * `files` and never encoded.
 */
export interface FolderManifest {
  version: 2
  /** the folder's own name: the top folder the download lands in */
  name: string
  /** total bytes of all files (derived, not encoded): code that reads `m.length` keeps working */
  length: number
  pieceLength: number
  /** sorted byte-wise by path components, no duplicates */
  files: readonly FolderFile[]
  /** the empty folders only (any other folder is implied by a file in it), sorted the same way */
  folders: ReadonlyArray<readonly string[]>
  /** SHA-256 of every piece, files in order, each file's pieces on their own (see layout.ts) */
  pieces: Uint8Array
}

export type Manifest = FileManifest | FolderManifest

export { comparePaths, nameProblem, reservedName, TEMP_PREFIX } from './names.js'
export type { FileSpan, Layout } from './layout.js'

export class InvalidManifestError extends Error { override name = 'InvalidManifestError' }
/** The bytes do not hash to the expected CID. */
export class ManifestMismatchError extends Error { override name = 'ManifestMismatchError' }

export function isPowerOfTwo (n: number): boolean {
  // bit ops are 32-bit: only valid below 2^31, far above MAX_PIECE_LENGTH anyway
  return Number.isInteger(n) && n > 0 && n <= 2 ** 30 && (n & (n - 1)) === 0
}

function isMap (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && CID.asCID(v) === null
}

/** unknown or missing keys of a map, `where` naming it in the message */
function keysProblem (m: Record<string, unknown>, keys: readonly string[], where = ''): string | undefined {
  for (const key of Object.keys(m)) {
    if (!keys.includes(key)) return `${where}unknown field ${JSON.stringify(key)}`
  }
  for (const key of keys) {
    if (!(key in m)) return `${where}missing field ${JSON.stringify(key)}`
  }
  return undefined
}

function pieceLengthProblem (pieceLength: unknown): string | undefined {
  if (typeof pieceLength !== 'number' || !isPowerOfTwo(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
    return `pieceLength must be a power of two in [${MIN_PIECE_LENGTH}, ${MAX_PIECE_LENGTH}], got ${String(pieceLength)}`
  }
  return undefined
}

function isLength (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/** Why `m` is not a valid manifest of either version, or undefined when it is. */
function manifestProblem (m: Record<string, unknown>): string | undefined {
  if (!('version' in m)) return 'missing field "version"'
  if (m.version === 1) return fileManifestProblem(m)
  if (m.version === 2) return folderManifestProblem(m)
  return `unsupported manifest version ${JSON.stringify(typeof m.version === 'bigint' ? String(m.version) : m.version)}`
}

function fileManifestProblem (m: Record<string, unknown>): string | undefined {
  const keysErr = keysProblem(m, FILE_KEYS)
  if (keysErr !== undefined) return keysErr
  const nameErr = nameProblem(m.name)
  if (nameErr !== undefined) return nameErr
  const { length, pieceLength, pieces } = m
  if (!isLength(length)) return 'length must be a safe integer >= 0'
  const plErr = pieceLengthProblem(pieceLength)
  if (plErr !== undefined) return plErr
  if (!(pieces instanceof Uint8Array)) return 'pieces must be bytes'
  const expected = Math.ceil(length / (pieceLength as number)) * HASH_LENGTH
  if (pieces.length !== expected) return `pieces has ${pieces.length} bytes, expected ${expected} for length ${length} and pieceLength ${String(pieceLength)}`
  return undefined
}

/** Why `path` (at `where`) is not a relative path of good names; `bytes` gets its size. */
function pathProblem (path: unknown, where: string, size: { bytes: number }): string | undefined {
  if (!Array.isArray(path)) return `${where} must be a list of names`
  // a path is its components: none is absolute, and the empty path would be the folder itself
  if (path.length === 0) return `${where} is empty`
  if (path.length > MAX_DEPTH) return `${where} has ${path.length} components, more than ${MAX_DEPTH}`
  let bytes = path.length - 1 // the '/' between components
  for (const [i, c] of path.entries()) {
    const err = nameProblem(c)
    if (err !== undefined) return `${where}[${i}]: ${err}`
    bytes += Buffer.byteLength(c as string, 'utf8')
  }
  size.bytes = bytes
  return undefined
}

function folderManifestProblem (m: Record<string, unknown>): string | undefined {
  const keysErr = keysProblem(m, FOLDER_KEYS)
  if (keysErr !== undefined) return keysErr
  const nameErr = nameProblem(m.name)
  if (nameErr !== undefined) return nameErr
  const plErr = pieceLengthProblem(m.pieceLength)
  if (plErr !== undefined) return plErr
  const pieceLength = m.pieceLength as number
  const { files, folders, pieces } = m
  if (!Array.isArray(files)) return 'files must be a list'
  if (!Array.isArray(folders)) return 'folders must be a list'
  if (files.length + folders.length > MAX_FILES) {
    return `${files.length} files and ${folders.length} folders, more than ${MAX_FILES} in all`
  }

  let pathBytes = 0
  const size = { bytes: 0 }
  const addPath = (): string | undefined => {
    pathBytes += size.bytes
    return pathBytes > MAX_PATH_BYTES ? `paths take more than ${MAX_PATH_BYTES} bytes` : undefined
  }
  let total = 0
  let count = 0
  for (const [i, f] of files.entries()) {
    if (!isMap(f)) return `files[${i}] must be a map`
    const keysErr = keysProblem(f, ENTRY_KEYS, `files[${i}]: `)
    if (keysErr !== undefined) return keysErr
    const pathErr = pathProblem(f.path, `files[${i}].path`, size) ?? addPath()
    if (pathErr !== undefined) return pathErr
    if (!isLength(f.length)) return `files[${i}].length must be a safe integer >= 0`
    total += f.length
    if (!Number.isSafeInteger(total)) return 'files add up to more than 2^53 - 1 bytes'
    count += Math.ceil(f.length / pieceLength)
    // canonical: one order, so one folder has one manifest and one CID
    if (i > 0) {
      const prev = (files[i - 1] as FolderFile).path
      const path = f.path as string[]
      const c = comparePaths(prev, path)
      if (c === 0) return `duplicate file ${showPath(path)}`
      if (c > 0) return `files are not sorted: ${showPath(path)} comes after ${showPath(prev)}`
    }
  }
  for (const [i, path] of folders.entries()) {
    const pathErr = pathProblem(path, `folders[${i}]`, size) ?? addPath()
    if (pathErr !== undefined) return pathErr
    if (i > 0) {
      const prev = folders[i - 1] as string[]
      const c = comparePaths(prev, path as string[])
      if (c === 0) return `duplicate folder ${showPath(path as string[])}`
      if (c > 0) return `folders are not sorted: ${showPath(path as string[])} comes after ${showPath(prev)}`
    }
  }
  const conflict = conflictProblem(files as FolderFile[], folders as string[][])
  if (conflict !== undefined) return conflict

  if (!(pieces instanceof Uint8Array)) return 'pieces must be bytes'
  const expected = count * HASH_LENGTH
  if (pieces.length !== expected) return `pieces has ${pieces.length} bytes, expected ${expected} for these files and pieceLength ${pieceLength}`
  return undefined
}

/**
 * A path that is a file and also a folder (the same path twice, or a file on the way to another
 * entry), or a listed folder that is not empty. Both lists are sorted and free of duplicates:
 * merged, a path that is a prefix of another is followed directly by one that extends it, so
 * comparing neighbours finds every conflict in one pass.
 */
function conflictProblem (files: readonly FolderFile[], folders: ReadonlyArray<readonly string[]>): string | undefined {
  let i = 0
  let j = 0
  let prev: { path: readonly string[], folder: boolean } | undefined
  while (i < files.length || j < folders.length) {
    const folder = i >= files.length || (j < folders.length && comparePaths(folders[j], files[i].path) < 0)
    const path = folder ? folders[j++] : files[i++].path
    if (prev !== undefined && isPathPrefix(prev.path, path)) {
      if (prev.path.length === path.length) return `${showPath(path)} is both a file and a folder`
      if (!prev.folder) return `file ${showPath(prev.path)} is also a folder on the way to ${showPath(path)}`
      return `folder ${showPath(prev.path)} is listed as empty but holds ${showPath(path)}`
    }
    prev = { path, folder }
  }
  return undefined
}

/** A folder manifest of these fields, its `length` derived from `files`. Not validated. */
export function folderManifest (fields: { name: string, pieceLength: number, files: readonly FolderFile[], folders: ReadonlyArray<readonly string[]>, pieces: Uint8Array }): FolderManifest {
  // frozen: a manifest's layout is cached by object, so its files must not change under it
  const files = Object.freeze(fields.files.map(f => Object.freeze({ path: Object.freeze([...f.path]), length: f.length })))
  const folders = Object.freeze(fields.folders.map(p => Object.freeze([...p])))
  let length = 0
  for (const f of files) length += f.length
  return { version: 2, name: fields.name, length, pieceLength: fields.pieceLength, files, folders, pieces: fields.pieces }
}

export function choosePieceLength (size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a safe integer >= 0, got ${size}`)
  let pl = MIN_PIECE_LENGTH
  while (pl < CHOSEN_MAX_PIECE_LENGTH && Math.ceil(size / pl) > TARGET_PIECES) pl *= 2
  return pl
}

// a layout per manifest object, with what it was made from: rebuilt if a field was reassigned
interface CachedLayout { layout: Layout, pieceLength: number, length: number, of: string | readonly FolderFile[] }
const layouts = new WeakMap<Manifest, CachedLayout>()

/**
 * Where each piece of `m` lies. A single file is one file at path [name]; a folder's files each
 * start on a piece boundary. Computed once per manifest object.
 */
export function manifestLayout (m: Manifest): Layout {
  const of = m.version === 1 ? m.name : m.files
  const cached = layouts.get(m)
  if (cached !== undefined && cached.pieceLength === m.pieceLength && cached.length === m.length && cached.of === of) return cached.layout
  const layout = m.version === 1
    ? layoutOf(m.pieceLength, [{ path: [m.name], length: m.length }])
    : layoutOf(m.pieceLength, m.files)
  layouts.set(m, { layout, pieceLength: m.pieceLength, length: m.length, of })
  return layout
}

export function pieceCount (m: Manifest): number {
  // a single file needs no layout: the arithmetic of every earlier version
  if (m.version === 1) return Math.ceil(m.length / m.pieceLength)
  return manifestLayout(m).pieceCount
}

function checkPiece (m: Manifest, piece: number): void {
  if (!Number.isInteger(piece) || piece < 0 || piece >= pieceCount(m)) {
    throw new RangeError(`piece ${piece} out of range [0, ${pieceCount(m)})`)
  }
}

export function pieceSize (m: Manifest, piece: number): number {
  checkPiece(m, piece)
  if (m.version === 1) return Math.min(m.pieceLength, m.length - piece * m.pieceLength)
  return manifestLayout(m).pieceSize(piece)
}

export function pieceHash (m: Manifest, piece: number): Uint8Array {
  checkPiece(m, piece)
  return m.pieces.subarray(piece * HASH_LENGTH, (piece + 1) * HASH_LENGTH)
}

/** The fields that are encoded, picked so extra properties of `m` never leak into the bytes. */
function encodedFields (m: Manifest): Record<string, unknown> {
  if (m.version === 1) return { version: m.version, name: m.name, length: m.length, pieceLength: m.pieceLength, pieces: m.pieces }
  if (m.version === 2) {
    // a malformed caller-made manifest must reach the validator, not throw a TypeError here
    const files: unknown = Array.isArray(m.files) ? m.files.map(f => isMap(f) ? { path: Array.isArray(f.path) ? [...f.path] : f.path, length: f.length } : f) : m.files
    const folders: unknown = Array.isArray(m.folders) ? m.folders.map(p => Array.isArray(p) ? [...p] : p) : m.folders
    return { version: m.version, name: m.name, pieceLength: m.pieceLength, files, folders, pieces: m.pieces }
  }
  return { version: (m as { version: unknown }).version }
}

export function encodeManifest (m: Manifest): Uint8Array {
  const picked = encodedFields(m)
  // validate on the way out too: we must never publish a manifest peers would reject
  const problem = manifestProblem(picked)
  if (problem !== undefined) throw new InvalidManifestError(`invalid manifest: ${problem}`)
  if (m.version === 2) {
    const total = m.files.reduce((sum, f) => sum + f.length, 0)
    if (m.length !== total) throw new InvalidManifestError(`invalid manifest: length is ${m.length} but the files add up to ${total}`)
  }
  return encodeValid(picked)
}

function encodeValid (picked: Record<string, unknown>): Uint8Array {
  const bytes = dagCbor.encode(picked)
  if (bytes.length > MAX_MANIFEST_BYTES) {
    // mostly hashes: bigger pieces help; mostly paths: nothing but fewer files will
    const hint = (picked.pieces as Uint8Array).length * 2 > bytes.length ? 'use a larger pieceLength' : 'too many files, or paths too long, for one manifest'
    throw new InvalidManifestError(`manifest is ${bytes.length} bytes, more than ${MAX_MANIFEST_BYTES}; ${hint}`)
  }
  // cborg sometimes hands back a pooled Buffer: return a plain, unshared Uint8Array every time
  return new Uint8Array(bytes)
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The manifest in `bytes`, which may come from anyone: InvalidManifestError with one reason. */
export function decodeManifest (bytes: Uint8Array): Manifest {
  if (!(bytes instanceof Uint8Array)) throw new InvalidManifestError('manifest must be bytes')
  if (bytes.length > MAX_MANIFEST_BYTES) throw new InvalidManifestError(`manifest is ${bytes.length} bytes, more than ${MAX_MANIFEST_BYTES}`)
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidManifestError(`manifest is not DAG-CBOR: ${(err as Error).message}`)
  }
  if (!isMap(value)) throw new InvalidManifestError('manifest is not a map')
  const problem = manifestProblem(value)
  if (problem !== undefined) throw new InvalidManifestError(`invalid manifest: ${problem}`)
  const m = value as unknown as Manifest
  // copy pieces: the decoder returns a view into `bytes`, which the caller may reuse
  const pieces = new Uint8Array(m.pieces)
  const manifest: Manifest = m.version === 1
    ? { version: 1, name: m.name, length: m.length, pieceLength: m.pieceLength, pieces }
    : folderManifest({ name: m.name, pieceLength: m.pieceLength, files: m.files, folders: m.folders, pieces })
  // one manifest, one CID: refuse any encoding other than the canonical one. The manifest was
  // built here, field by field: encode it as it is, without encodedFields' defensive copies
  const fields = manifest.version === 1
    ? manifest
    : { version: 2, name: manifest.name, pieceLength: manifest.pieceLength, files: manifest.files, folders: manifest.folders, pieces }
  if (!equalBytes(encodeValid(fields as unknown as Record<string, unknown>), bytes)) throw new InvalidManifestError('manifest is not canonically encoded')
  return manifest
}

export async function manifestCid (bytes: Uint8Array): Promise<CID> {
  return CID.createV1(dagCbor.code, await sha256.digest(bytes))
}

export async function verifyManifest (bytes: Uint8Array, cid: CID): Promise<Manifest> {
  const expected = cid.toString()
  const actual = (await manifestCid(bytes)).toString()
  // compare string forms: works for a CID from another copy of multiformats too
  if (actual !== expected) throw new ManifestMismatchError(`manifest bytes hash to ${actual}, expected ${expected}`)
  return decodeManifest(bytes)
}

export function parseCid (text: string): CID {
  let cid: CID
  try {
    cid = CID.parse(text.trim())
  } catch {
    throw new InvalidManifestError(`not a CID: ${JSON.stringify(text.slice(0, 100))}`)
  }
  // a manifest CID is always CIDv1 dag-cbor sha2-256; anything else cannot name one
  if (cid.version !== 1 || cid.code !== dagCbor.code || cid.multihash.code !== sha256.code || cid.multihash.size !== HASH_LENGTH) {
    throw new InvalidManifestError(`not a manifest CID (need CIDv1, dag-cbor, sha2-256): ${text}`)
  }
  return cid
}
