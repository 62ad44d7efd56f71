import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

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
const MAX_NAME_BYTES = 255
const MANIFEST_KEYS = ['version', 'name', 'length', 'pieceLength', 'pieces']

export interface Manifest {
  version: 1
  name: string // one path component: no '/', '\\', NUL; not '.' or '..'; 1..255 bytes UTF-8
  length: number // bytes, safe integer >= 0
  pieceLength: number // power of two >= MIN_PIECE_LENGTH
  pieces: Uint8Array // concatenated SHA-256 digests, ceil(length/pieceLength) * 32 bytes
  // room for multi-file later: a future `files` field; version stays the switch
}

export class InvalidManifestError extends Error { override name = 'InvalidManifestError' }
/** The bytes do not hash to the expected CID. */
export class ManifestMismatchError extends Error { override name = 'ManifestMismatchError' }

export function isPowerOfTwo (n: number): boolean {
  // bit ops are 32-bit: only valid below 2^31, far above MAX_PIECE_LENGTH anyway
  return Number.isInteger(n) && n > 0 && n <= 2 ** 30 && (n & (n - 1)) === 0
}

export function nameProblem (name: unknown): string | undefined {
  if (typeof name !== 'string') return 'name must be a string'
  const size = Buffer.byteLength(name, 'utf8')
  if (size < 1 || size > MAX_NAME_BYTES) return `name must be 1..${MAX_NAME_BYTES} bytes of UTF-8, got ${size}`
  // lone surrogates would not survive a UTF-8 round trip: the manifest would change identity
  if (!name.isWellFormed()) return 'name is not well-formed Unicode'
  if (name === '.' || name === '..') return `name must not be ${JSON.stringify(name)}`
  // the name becomes a file name on the downloader's disk: one component only (no traversal)
  if (/[/\\\0]/.test(name)) return `name must be a single path component without '/', '\\' or NUL: ${JSON.stringify(name)}`
  return undefined
}

/** Why `m` is not a valid version-1 manifest, or undefined when it is. */
function manifestProblem (m: Record<string, unknown>): string | undefined {
  if (!('version' in m)) return 'missing field "version"'
  if (m.version !== 1) return `unsupported manifest version ${JSON.stringify(typeof m.version === 'bigint' ? String(m.version) : m.version)}`
  for (const key of Object.keys(m)) {
    if (!MANIFEST_KEYS.includes(key)) return `unknown field ${JSON.stringify(key)}`
  }
  for (const key of MANIFEST_KEYS) {
    if (!(key in m)) return `missing field ${JSON.stringify(key)}`
  }
  const nameErr = nameProblem(m.name)
  if (nameErr !== undefined) return nameErr
  const { length, pieceLength, pieces } = m
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) return 'length must be a safe integer >= 0'
  if (typeof pieceLength !== 'number' || !isPowerOfTwo(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
    return `pieceLength must be a power of two in [${MIN_PIECE_LENGTH}, ${MAX_PIECE_LENGTH}], got ${String(pieceLength)}`
  }
  if (!(pieces instanceof Uint8Array)) return 'pieces must be bytes'
  const expected = Math.ceil(length / pieceLength) * HASH_LENGTH
  if (pieces.length !== expected) return `pieces has ${pieces.length} bytes, expected ${expected} for length ${length} and pieceLength ${pieceLength}`
  return undefined
}

export function choosePieceLength (size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a safe integer >= 0, got ${size}`)
  let pl = MIN_PIECE_LENGTH
  while (pl < CHOSEN_MAX_PIECE_LENGTH && Math.ceil(size / pl) > TARGET_PIECES) pl *= 2
  return pl
}

export function pieceCount (m: Manifest): number {
  return Math.ceil(m.length / m.pieceLength)
}

function checkPiece (m: Manifest, piece: number): void {
  if (!Number.isInteger(piece) || piece < 0 || piece >= pieceCount(m)) {
    throw new RangeError(`piece ${piece} out of range [0, ${pieceCount(m)})`)
  }
}

export function pieceSize (m: Manifest, piece: number): number {
  checkPiece(m, piece)
  return Math.min(m.pieceLength, m.length - piece * m.pieceLength)
}

export function pieceHash (m: Manifest, piece: number): Uint8Array {
  checkPiece(m, piece)
  return m.pieces.subarray(piece * HASH_LENGTH, (piece + 1) * HASH_LENGTH)
}

export function encodeManifest (m: Manifest): Uint8Array {
  // pick the known fields so extra properties of `m` can never leak into the canonical bytes
  const picked = { version: m.version, name: m.name, length: m.length, pieceLength: m.pieceLength, pieces: m.pieces }
  // validate on the way out too: we must never publish a manifest peers would reject
  const problem = manifestProblem(picked)
  if (problem !== undefined) throw new InvalidManifestError(`invalid manifest: ${problem}`)
  const bytes = dagCbor.encode(picked)
  if (bytes.length > MAX_MANIFEST_BYTES) throw new InvalidManifestError(`manifest is ${bytes.length} bytes, more than ${MAX_MANIFEST_BYTES}; use a larger pieceLength`)
  // cborg sometimes hands back a pooled Buffer: return a plain, unshared Uint8Array every time
  return new Uint8Array(bytes)
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export function decodeManifest (bytes: Uint8Array): Manifest {
  if (!(bytes instanceof Uint8Array)) throw new InvalidManifestError('manifest must be bytes')
  if (bytes.length > MAX_MANIFEST_BYTES) throw new InvalidManifestError(`manifest is ${bytes.length} bytes, more than ${MAX_MANIFEST_BYTES}`)
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidManifestError(`manifest is not DAG-CBOR: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array || CID.asCID(value) !== null) {
    throw new InvalidManifestError('manifest is not a map')
  }
  const problem = manifestProblem(value as Record<string, unknown>)
  if (problem !== undefined) throw new InvalidManifestError(`invalid manifest: ${problem}`)
  const m = value as Manifest
  // copy pieces: the decoder returns a view into `bytes`, which the caller may reuse
  const manifest: Manifest = { version: 1, name: m.name, length: m.length, pieceLength: m.pieceLength, pieces: new Uint8Array(m.pieces) }
  // one manifest, one CID: refuse any encoding other than the canonical one
  if (!equalBytes(encodeManifest(manifest), bytes)) throw new InvalidManifestError('manifest is not canonically encoded')
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
