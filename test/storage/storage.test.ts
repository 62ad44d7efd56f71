import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { chown, link, lstat, mkdtemp, readFile, readdir, rename, rm, stat, symlink, truncate, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { pieceCount, pieceSize, type Manifest } from '../../src/manifest/manifest.js'
import { createManifest } from '../../src/storage/manifest-file.js'
import { StorageError, openDownloadStore, openSeedStore, partPathOf, sha256, type PieceStore } from '../../src/storage/storage.js'

const sample = fileURLToPath(new URL('../../fixtures/sample.bin', import.meta.url))
/** names the temporary files (a manifest CID in real use) */
const KEY = 'bafytestkey'
const PART = `.bitswarm-${KEY}.part`

let dir: string
let data: Uint8Array
let manifest: Manifest
const open: PieceStore[] = []
const track = <T extends PieceStore>(s: T): T => { open.push(s); return s }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bitswarm-storage-'))
  data = new Uint8Array(await readFile(sample))
  manifest = (await createManifest(sample)).manifest // 100 KiB, 16 KiB pieces: 7, the last 4 KiB
})

afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
  await rm(dir, { recursive: true, force: true })
})

const pieceOf = (p: number): Uint8Array => data.subarray(p * manifest.pieceLength, p * manifest.pieceLength + pieceSize(manifest, p))

describe('download store', () => {
  it('writes pieces out of order, reads blocks back, finalizes by rename', async () => {
    const store = track(await openDownloadStore(join(dir, 'out'), manifest, KEY))
    const part = join(dir, 'out', PART)
    expect(store.reusedPart).toBe(false)
    expect(store.path).toBe(join(dir, 'out', 'sample.bin'))
    expect((await stat(part)).size).toBe(manifest.length) // preallocated

    const order = [6, 2, 0, 5, 1, 4, 3]
    for (const p of order) {
      const piece = pieceOf(p)
      // odd pieces as several buffers (writev), even ones as one buffer
      await store.writePiece(p, p % 2 === 1 ? [piece.subarray(0, 100), piece.subarray(100, 5000), piece.subarray(5000)] : piece)
    }
    for (let p = 0; p < pieceCount(manifest); p++) expect(await store.verifyPiece(p)).toBe(true)
    expect(await store.readBlock(3, 16384 - 10, 10)).toEqual(pieceOf(3).subarray(16384 - 10))
    expect(await store.readBlock(6, 0, 4096)).toEqual(pieceOf(6))
    expect(await store.readPiece(2)).toEqual(pieceOf(2))

    // nothing at the final name until finalize()
    await expect(stat(store.path)).rejects.toMatchObject({ code: 'ENOENT' })
    await store.finalize()
    expect(await readdir(join(dir, 'out'))).toEqual(['sample.bin'])
    expect(Buffer.from(await readFile(store.path)).equals(Buffer.from(data))).toBe(true)
    // still readable after finalize (a finished download keeps seeding), but not writable
    expect(await store.readBlock(0, 0, 16)).toEqual(data.subarray(0, 16))
    await expect(store.writePiece(0, pieceOf(0))).rejects.toThrow(StorageError)
    await store.finalize() // idempotent
    await store.close()
    await store.close() // idempotent
    await expect(store.readPiece(0)).rejects.toThrow(/closed/)
  })

  it('verifyPiece is false for a missing or corrupt piece', async () => {
    const store = track(await openDownloadStore(dir, manifest, KEY))
    expect(await store.verifyPiece(1)).toBe(false) // zeros
    const bad = new Uint8Array(pieceOf(1))
    bad[77] ^= 1
    await store.writePiece(1, bad)
    expect(await store.verifyPiece(1)).toBe(false)
    await store.writePiece(1, pieceOf(1))
    expect(await store.verifyPiece(1)).toBe(true)
  })

  it('reuses a leftover part file and fixes its size', async () => {
    const part = join(dir, PART)
    await writeFile(part, data.subarray(0, 20000))
    const store = track(await openDownloadStore(dir, manifest, KEY))
    expect(store.reusedPart).toBe(true)
    expect((await stat(part)).size).toBe(manifest.length)
    expect(await store.verifyPiece(0)).toBe(true) // kept its bytes
    expect(await store.verifyPiece(1)).toBe(false)
  })

  it('never replaces a file at the final name: refused up front, and one that appears meanwhile stays', async () => {
    await writeFile(join(dir, 'sample.bin'), 'old contents')
    await expect(openDownloadStore(dir, manifest, KEY)).rejects.toThrow(/already exists/)
    await rm(join(dir, 'sample.bin'))
    const store = track(await openDownloadStore(dir, manifest, KEY))
    for (let p = 0; p < pieceCount(manifest); p++) await store.writePiece(p, pieceOf(p))
    // a dangling symlink is a name too: rename(2) would replace it, link(2) does not
    await symlink(join(dir, 'nowhere'), join(dir, 'sample.bin'))
    await expect(store.finalize()).rejects.toThrow(/appeared during the download/)
    expect((await lstat(join(dir, 'sample.bin'))).isSymbolicLink()).toBe(true)
    expect((await stat(join(dir, PART))).size).toBe(manifest.length) // the verified data is kept
  })

  it('a symlink at the part file name is replaced, never followed', async () => {
    const victim = join(dir, 'victim.txt')
    await writeFile(victim, 'precious')
    await mkdir(join(dir, 'out'))
    await symlink(victim, join(dir, 'out', PART))
    const store = track(await openDownloadStore(join(dir, 'out'), manifest, KEY))
    expect(store.reusedPart).toBe(false)
    for (let p = 0; p < pieceCount(manifest); p++) await store.writePiece(p, pieceOf(p))
    await store.finalize()
    expect(await readFile(victim, 'utf8')).toBe('precious')
    expect((await lstat(store.path)).isFile()).toBe(true)
    expect(await readdir(join(dir, 'out'))).toEqual(['sample.bin'])
  })

  it('a part file hard-linked to another file is not written through', async () => {
    const victim = join(dir, 'victim.bin')
    await writeFile(victim, new Uint8Array(manifest.length).fill(1))
    await link(victim, join(dir, PART))
    const store = track(await openDownloadStore(dir, manifest, KEY))
    expect(store.reusedPart).toBe(false)
    await store.writePiece(0, pieceOf(0))
    expect((await readFile(victim)).every(b => b === 1)).toBe(true)
  })

  // only root can give a file away to another user
  it.runIf(process.getuid?.() === 0)('a part file owned by another user is not reused', async () => {
    await writeFile(join(dir, PART), data)
    await chown(join(dir, PART), 65534, 65534)
    const store = track(await openDownloadStore(dir, manifest, KEY))
    expect(store.reusedPart).toBe(false)
    expect((await stat(join(dir, PART))).uid).toBe(0)
    expect(await store.verifyPiece(0)).toBe(false) // a fresh, empty file
  })

  it('a FIFO at the part file name is refused at once, not waited on', async () => {
    execFileSync('mkfifo', [join(dir, PART)])
    await expect(openDownloadStore(dir, manifest, KEY)).rejects.toThrow(/not a regular file/)
  })

  it('a part file swapped for another file during the download is not finalized', async () => {
    const store = track(await openDownloadStore(dir, manifest, KEY))
    for (let p = 0; p < pieceCount(manifest); p++) await store.writePiece(p, pieceOf(p))
    await writeFile(join(dir, 'evil'), new Uint8Array(manifest.length).fill(9))
    await rename(join(dir, 'evil'), join(dir, PART))
    await expect(store.finalize()).rejects.toThrow(/replaced during the download/)
    await expect(lstat(join(dir, 'sample.bin'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('temporary names come from the key, not the manifest name; names in their namespace are refused', async () => {
    expect(partPathOf(dir, KEY)).toBe(join(dir, PART))
    expect(() => partPathOf(dir, '../x')).toThrow(StorageError)
    expect(() => partPathOf(dir, '')).toThrow(StorageError)
    for (const name of [PART, `.bitswarm-${KEY}.resume`, '.BITSWARM-x']) {
      await expect(openDownloadStore(dir, { ...manifest, name }, KEY)).rejects.toThrow(/reserved/)
    }
    // a name as long as a file name can be still downloads: the temporary names are short
    const long = 'n'.repeat(255)
    const store = track(await openDownloadStore(dir, { ...manifest, name: long }, KEY))
    for (let p = 0; p < pieceCount(manifest); p++) await store.writePiece(p, pieceOf(p))
    await store.finalize()
    expect((await stat(join(dir, long))).size).toBe(manifest.length)
  })

  it('handles an empty file', async () => {
    const { manifest: empty } = await createManifest(fileURLToPath(new URL('../../fixtures/empty.bin', import.meta.url)))
    const store = track(await openDownloadStore(dir, empty, KEY))
    await expect(store.readBlock(0, 0, 1)).rejects.toThrow(StorageError)
    await store.finalize()
    expect((await stat(join(dir, 'empty.bin'))).size).toBe(0)
  })

  it('creates the out dir and rejects an unwritable one', async () => {
    const nested = join(dir, 'a', 'b', 'c')
    track(await openDownloadStore(nested, manifest, KEY))
    expect((await stat(nested)).isDirectory()).toBe(true)

    await writeFile(join(dir, 'file'), 'x')
    const under = join(dir, 'file', 'sub') // a path under a regular file can never be created
    await expect(openDownloadStore(under, manifest, KEY)).rejects.toThrow(StorageError)
    await expect(openDownloadStore(under, manifest, KEY)).rejects.toThrow(`cannot write to ${under}: ENOTDIR`)
    await expect(openDownloadStore(join(dir, 'file'), manifest, KEY)).rejects.toThrow(`cannot write to ${join(dir, 'file')}:`)
    // the part path taken by a directory
    await mkdir(join(dir, 'd', PART), { recursive: true })
    await expect(openDownloadStore(join(dir, 'd'), manifest, KEY)).rejects.toThrow(StorageError)
  })

  // Node 20's mkdir({ recursive: true }) spins forever here; ours must fail fast
  it.runIf(existsSync('/proc/self'))('fails fast where mkdir says ENOENT under an existing parent', async () => {
    await expect(openDownloadStore('/proc/bitswarm-test/out', manifest, KEY)).rejects.toThrow(StorageError)
  })

  it('refuses an unsafe name even if a manifest slipped through', async () => {
    await expect(openDownloadStore(dir, { ...manifest, name: '../escape' }, KEY)).rejects.toThrow(/unsafe file name/)
    await expect(openDownloadStore(dir, { ...manifest, name: '..' }, KEY)).rejects.toThrow(StorageError)
  })

  it('bounds errors', async () => {
    const store = track(await openDownloadStore(dir, manifest, KEY))
    const bad: Array<() => Promise<unknown>> = [
      async () => await store.readBlock(7, 0, 16), // no piece 7
      async () => await store.readBlock(-1, 0, 16),
      async () => await store.readBlock(1.5, 0, 16),
      async () => await store.readBlock(0, 16384, 1), // starts past the piece
      async () => await store.readBlock(0, 16000, 1000), // runs past the piece
      async () => await store.readBlock(6, 0, 4097), // last piece is 4096 bytes
      async () => await store.readBlock(0, -1, 10),
      async () => await store.readBlock(0, 0, 0),
      async () => await store.readBlock(0, 0, Number.NaN),
      async () => await store.readPiece(7),
      async () => await store.verifyPiece(7),
      async () => await store.writePiece(7, new Uint8Array(16384)),
      async () => await store.writePiece(0, new Uint8Array(100)), // wrong size
      async () => await store.writePiece(6, new Uint8Array(16384)), // last piece is shorter
      async () => await store.writePiece(1, [new Uint8Array(16384), new Uint8Array(1)])
    ]
    for (const call of bad) await expect(call()).rejects.toThrow(StorageError)
    // nothing was written by the rejected writes
    expect((await stat(join(dir, PART))).size).toBe(manifest.length)
  })
})

describe('seed store', () => {
  it('serves blocks of a complete file', async () => {
    const store = track(await openSeedStore(sample, manifest))
    expect(store.path).toBe(sample)
    for (let p = 0; p < pieceCount(manifest); p++) expect(await store.verifyPiece(p)).toBe(true)
    expect(await store.readBlock(2, 100, 200)).toEqual(pieceOf(2).subarray(100, 300))
    await expect(store.writePiece(0, pieceOf(0))).rejects.toThrow(/read-only/)
    await store.finalize() // no-op
    expect(await store.readBlock(0, 0, 4)).toEqual(data.subarray(0, 4))
  })

  it('rejects a missing file', async () => {
    const missing = join(dir, 'missing.bin')
    await expect(openSeedStore(missing, manifest)).rejects.toThrow(StorageError)
    await expect(openSeedStore(missing, manifest)).rejects.toThrow(`${missing} is missing`)
  })

  it('rejects a file of the wrong size', async () => {
    const f = join(dir, 'short.bin')
    await writeFile(f, data.subarray(0, 1000))
    await expect(openSeedStore(f, manifest)).rejects.toThrow(`${f} has 1000 bytes, manifest says ${manifest.length}`)
  })

  it('rejects a directory', async () => {
    await expect(openSeedStore(dir, manifest)).rejects.toThrow(StorageError)
  })

  it('reports a file truncated after opening instead of returning zeros', async () => {
    const f = join(dir, 'copy.bin')
    await writeFile(f, data)
    const store = track(await openSeedStore(f, manifest))
    await truncate(f, 20000)
    await expect(store.readPiece(3)).rejects.toThrow(StorageError)
  })
})

describe('sha256', () => {
  it('hashes one buffer or many', async () => {
    const want = createHash('sha256').update('hello world').digest()
    expect(Buffer.from(await sha256(new TextEncoder().encode('hello world'))).equals(want)).toBe(true)
    expect(Buffer.from(await sha256([new TextEncoder().encode('hello'), new TextEncoder().encode(' world')])).equals(want)).toBe(true)
    expect((await sha256([])).length).toBe(32)
  })
})
