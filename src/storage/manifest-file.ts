/**
 * Manifests on disk: make one by reading and hashing a file, read one, write one atomically.
 * The manifest itself (format, validation, CID) is pure and lives in ../manifest/manifest.ts.
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { basename } from 'node:path'
import type { CID } from 'multiformats/cid'
import {
  choosePieceLength, decodeManifest, encodeManifest, HASH_LENGTH, InvalidManifestError, isPowerOfTwo, manifestCid,
  MAX_MANIFEST_BYTES, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, nameProblem, type Manifest
} from '../manifest/manifest.js'
import { writeFileAtomic } from './atomic-file.js'

const READ_CHUNK = 1024 * 1024

// "ENOENT (no such file or directory)": the code for scripts, the words for people
function describe (e: NodeJS.ErrnoException): string {
  if (e.code === undefined) return e.message
  const words = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message
  return `${e.code} (${words})`
}

/** Turn an fs error into one that names the file; the errno code stays available on `.code`. */
function readError (path: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException
  const out: NodeJS.ErrnoException = new Error(`cannot read ${path}: ${describe(e)}`, { cause: err })
  if (e.code !== undefined) out.code = e.code
  return out
}

export async function createManifest (filePath: string, options: { pieceLength?: number, name?: string, signal?: AbortSignal } = {}): Promise<{ manifest: Manifest, bytes: Uint8Array, cid: CID }> {
  options.signal?.throwIfAborted()
  const name = options.name ?? basename(filePath)
  const nameErr = nameProblem(name)
  if (nameErr !== undefined) throw new InvalidManifestError(nameErr)

  let fh
  try {
    fh = await open(filePath, 'r')
  } catch (err) {
    throw readError(filePath, err)
  }
  try {
    // stat the open handle, not the path: the size and the bytes we hash belong to one file
    const st = await fh.stat()
    if (st.isDirectory()) throw readError(filePath, Object.assign(new Error('is a directory'), { code: 'EISDIR' }))
    if (!st.isFile()) throw new Error(`cannot read ${filePath}: not a regular file`)
    const length = st.size
    const pieceLength = options.pieceLength ?? choosePieceLength(length)
    if (!isPowerOfTwo(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
      throw new InvalidManifestError(`pieceLength must be a power of two in [${MIN_PIECE_LENGTH}, ${MAX_PIECE_LENGTH}], got ${pieceLength}`)
    }

    const count = Math.ceil(length / pieceLength)
    const pieces = new Uint8Array(count * HASH_LENGTH)
    let piece = 0
    let inPiece = 0 // bytes of the current piece hashed so far
    let hash = createHash('sha256')
    let total = 0
    const stream = fh.createReadStream({ start: 0, highWaterMark: READ_CHUNK, autoClose: false, signal: options.signal })
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length
        if (total > length) throw new Error(`${filePath} grew while reading`)
        // a chunk may end mid-piece or span several pieces
        let pos = 0
        while (pos < chunk.length) {
          const take = Math.min(pieceLength - inPiece, chunk.length - pos)
          hash.update(chunk.subarray(pos, pos + take))
          pos += take
          inPiece += take
          if (inPiece === pieceLength) {
            pieces.set(hash.digest(), piece * HASH_LENGTH)
            piece++
            inPiece = 0
            hash = createHash('sha256')
          }
        }
      }
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err
      if ((err as NodeJS.ErrnoException).code !== undefined) throw readError(filePath, err)
      throw err
    } finally {
      stream.destroy()
    }
    if (total !== length) throw new Error(`${filePath} shrank while reading (${total} of ${length} bytes)`)
    if (inPiece > 0) pieces.set(hash.digest(), piece * HASH_LENGTH)

    const manifest: Manifest = { version: 1, name, length, pieceLength, pieces }
    const bytes = encodeManifest(manifest)
    return { manifest, bytes, cid: await manifestCid(bytes) }
  } finally {
    await fh.close()
  }
}

export async function readManifestFile (path: string): Promise<{ manifest: Manifest, bytes: Uint8Array, cid: CID }> {
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
