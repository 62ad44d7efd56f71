/**
 * One suite for every PieceStore backend (as anacrolix/torrent runs one storage test suite over
 * each of its backends): what the swarm, the piece cache and the resume code rely on, stated
 * once. A backend that fails a case it should pass names it in `knownFailures`, with the reason;
 * the case is then registered as skipped for that backend only, so the gap stays visible.
 *
 * Sizes are small (a few hundred KiB at most): the cases are about edges, not throughput.
 */
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { pieceCount, pieceSize, type Manifest } from '../../src/manifest/manifest.js'
import { StorageError, type DownloadStore, type PieceStore } from '../../src/storage/storage.js'
import { prng } from '../helpers/prng.js'

export interface StoreBackend<D extends DownloadStore = DownloadStore> {
  /** A writable store for a download of `manifest`, nothing written yet. */
  openDownload: (manifest: Manifest) => Promise<D>
  /** A read-only store serving `data`, a complete file matching `manifest`. */
  openSeed: (manifest: Manifest, data: Uint8Array) => Promise<PieceStore>
  /** After finalize(): the finished file's bytes, read from wherever the backend keeps them. */
  finished: (store: D) => Promise<Uint8Array>
  /** Runs after each case, once the case's stores are closed (temp dirs go here). */
  cleanup?: () => Promise<void>
  /** Case id → why this backend fails it. Those cases are registered as skipped. */
  knownFailures?: Readonly<Record<string, string>>
}

/** A file's shape: the cases run over each (the last piece short, full, and the only one). */
interface Shape { title: string, pieceLength: number, length: number }

const SHAPES: Shape[] = [
  { title: '5 pieces and a short last one', pieceLength: 16384, length: 5 * 16384 + 1000 },
  { title: 'an exact multiple of the piece length', pieceLength: 16384, length: 3 * 16384 },
  { title: 'one piece of one byte', pieceLength: 16384, length: 1 },
  { title: '64 KiB pieces', pieceLength: 65536, length: 4 * 65536 + 12345 }
]
const MAIN = SHAPES[0]

/** Deterministic bytes: a failure reproduces on every run. */
export function testBytes (length: number, seed = 1): Uint8Array {
  const next = prng(seed)
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256)
  return out
}

/** A version-1 manifest for `data` (without going through a file, which some backends lack). */
export function manifestOf (data: Uint8Array, pieceLength: number, name = 'file.bin'): Manifest {
  const n = Math.ceil(data.length / pieceLength)
  const pieces = new Uint8Array(n * 32)
  for (let p = 0; p < n; p++) {
    pieces.set(createHash('sha256').update(data.subarray(p * pieceLength, (p + 1) * pieceLength)).digest(), p * 32)
  }
  return { version: 1, name, length: data.length, pieceLength, pieces }
}

interface Fixture { data: Uint8Array, manifest: Manifest, n: number, pieceOf: (p: number) => Uint8Array }

function fixture (shape: Shape, seed = 1): Fixture {
  const data = testBytes(shape.length, seed)
  const manifest = manifestOf(data, shape.pieceLength)
  return {
    data,
    manifest,
    n: pieceCount(manifest),
    pieceOf: (p) => data.subarray(p * shape.pieceLength, p * shape.pieceLength + pieceSize(manifest, p))
  }
}

/** A piece as the swarm may hand it over: one buffer, or several (some empty, some views at an offset). */
function asChunks (piece: Uint8Array, p: number): Uint8Array | Uint8Array[] {
  if (p % 2 === 0) return piece
  // views into a larger buffer, so a backend that ignores byteOffset gets the wrong bytes
  const backing = new Uint8Array(piece.length + 7)
  backing.set(piece, 7)
  const view = backing.subarray(7)
  const cut = Math.min(100, view.length)
  return [new Uint8Array(0), view.subarray(0, cut), new Uint8Array(0), view.subarray(cut)]
}

const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

export function describeStoreConformance<D extends DownloadStore> (name: string, backend: StoreBackend<D>): void {
  describe(`PieceStore conformance: ${name}`, () => {
    const open: PieceStore[] = []
    const track = <T extends PieceStore>(s: T): T => { open.push(s); return s }
    const download = async (m: Manifest): Promise<D> => track(await backend.openDownload(m))
    const seed = async (m: Manifest, data: Uint8Array): Promise<PieceStore> => track(await backend.openSeed(m, data))

    afterEach(async () => {
      for (const s of open.splice(0)) await s.close()
      await backend.cleanup?.()
    })

    const ids = new Set<string>()
    let group = ''
    /**
     * Cases are grouped by title prefix, not nested describe(): vitest collects a nested
     * describe only after this function returns, too late for the knownFailures check below.
     */
    const inGroup = (title: string, register: () => void): void => { group = title; register(); group = '' }
    /** Registers one case, skipped (with its reason in the title) if the backend is known to fail it. */
    const check = (id: string, title: string, fn: () => Promise<void>): void => {
      if (ids.has(id)) throw new Error(`duplicate conformance case id ${id}`)
      ids.add(id)
      const known = backend.knownFailures?.[id]
      if (known === undefined) it(`${group}: ${title} [${id}]`, fn)
      else it.skip(`${group}: ${title} [${id}] (known failure of this backend: ${known})`, fn)
    }

    /** Every byte of the file, read back block by block (uneven blocks, clipped at piece ends). */
    const readAll = async (store: PieceStore, f: Fixture, block = 5000): Promise<Uint8Array> => {
      const out = new Uint8Array(f.manifest.length)
      for (let p = 0; p < f.n; p++) {
        const size = pieceSize(f.manifest, p)
        for (let off = 0; off < size; off += block) {
          const len = Math.min(block, size - off)
          const got = await store.readBlock(p, off, len)
          expect(got.byteLength).toBe(len)
          out.set(got, p * f.manifest.pieceLength + off)
        }
      }
      return out
    }

    const expectIntact = async (store: PieceStore, f: Fixture): Promise<void> => {
      for (let p = 0; p < f.n; p++) expect(await store.verifyPiece(p)).toBe(true)
      expect(eq(await readAll(store, f), f.data)).toBe(true)
    }

    inGroup('download store', () => {
      for (const shape of SHAPES) {
        check(`roundtrip/${shape.title}`, `pieces written out of order read back byte-exact: ${shape.title}`, async () => {
          const f = fixture(shape)
          const store = await download(f.manifest)
          // last first, then the rest backwards: no backend may assume sequential writes
          const order = [f.n - 1, ...Array.from({ length: f.n - 1 }, (_, i) => f.n - 2 - i)]
          for (const p of order) await store.writePiece(p, asChunks(f.pieceOf(p), p))
          for (let p = 0; p < f.n; p++) {
            expect(eq(await store.readPiece(p), f.pieceOf(p))).toBe(true)
            expect(await store.verifyPiece(p)).toBe(true)
            const size = pieceSize(f.manifest, p)
            // first byte, last byte, the whole piece as one block
            expect(eq(await store.readBlock(p, 0, 1), f.pieceOf(p).subarray(0, 1))).toBe(true)
            expect(eq(await store.readBlock(p, size - 1, 1), f.pieceOf(p).subarray(size - 1))).toBe(true)
            expect(eq(await store.readBlock(p, 0, size), f.pieceOf(p))).toBe(true)
          }
          expect(eq(await readAll(store, f), f.data)).toBe(true)
          expect(eq(await readAll(store, f, 16384), f.data)).toBe(true)
        })
      }

      check('boundaries', 'bytes on either side of each piece boundary belong to their own piece', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        for (let p = 0; p + 1 < f.n; p++) {
          const end = await store.readBlock(p, f.manifest.pieceLength - 3, 3)
          const start = await store.readBlock(p + 1, 0, 3)
          const at = (p + 1) * f.manifest.pieceLength
          expect(eq(Buffer.concat([end, start]), f.data.subarray(at - 3, at + 3))).toBe(true)
        }
      })

      check('fresh', 'a new download store is empty: pieces read as zeros and do not verify', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        expect(store.reusedPart).toBe(false)
        for (let p = 0; p < f.n; p++) {
          const piece = await store.readPiece(p)
          expect(piece.byteLength).toBe(pieceSize(f.manifest, p))
          expect(piece.every(b => b === 0)).toBe(true)
          expect((await store.readBlock(p, 10, 20)).every(b => b === 0)).toBe(true)
          // verifyStore relies on this: a hole is "missing", never an error
          expect(await store.verifyPiece(p)).toBe(false)
        }
      })

      check('neighbours', 'writing one piece leaves the pieces around it unwritten', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        await store.writePiece(2, f.pieceOf(2))
        expect(await store.verifyPiece(2)).toBe(true)
        for (const p of [1, 3]) {
          expect(await store.verifyPiece(p)).toBe(false)
          expect((await store.readPiece(p)).every(b => b === 0)).toBe(true)
        }
        // the short last piece on its own
        await store.writePiece(f.n - 1, f.pieceOf(f.n - 1))
        expect(await store.verifyPiece(f.n - 1)).toBe(true)
        expect(await store.verifyPiece(f.n - 2)).toBe(false)
      })

      check('overwrite', 'a piece that failed to verify can be written again', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        const bad = new Uint8Array(f.pieceOf(1))
        bad[777] ^= 0xff
        await store.writePiece(1, bad)
        expect(await store.verifyPiece(1)).toBe(false)
        expect(eq(await store.readPiece(1), bad)).toBe(true)
        await store.writePiece(1, f.pieceOf(1))
        expect(await store.verifyPiece(1)).toBe(true)
        expect(eq(await store.readPiece(1), f.pieceOf(1))).toBe(true)
      })

      check('write-copies', 'a written buffer may be reused at once: the store keeps its own copy', async () => {
        // the swarm hands the piece buffer back to its pool as soon as writePiece resolves
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        const buf = new Uint8Array(f.pieceOf(0))
        await store.writePiece(0, buf)
        const chunks = [new Uint8Array(f.pieceOf(1).subarray(0, 5)), new Uint8Array(f.pieceOf(1).subarray(5))]
        await store.writePiece(1, chunks)
        buf.fill(0xee)
        for (const c of chunks) c.fill(0xee)
        expect(await store.verifyPiece(0)).toBe(true)
        expect(await store.verifyPiece(1)).toBe(true)
      })

      check('read-copies', 'what a read returns is the caller\'s: changing it changes nothing stored', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        await store.writePiece(0, f.pieceOf(0))
        ;(await store.readBlock(0, 0, 100)).fill(1)
        ;(await store.readPiece(0)).fill(2)
        const into = new Uint8Array(f.manifest.pieceLength)
        await store.readPieceInto(0, into)
        into.fill(3)
        expect(await store.verifyPiece(0)).toBe(true)
      })

      check('read-into', 'readPieceInto fills only the piece\'s bytes of the buffer and returns the piece size', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        const last = f.n - 1
        const lastSize = pieceSize(f.manifest, last)
        // a reused slot of a full piece's size holding the short last piece (as the piece cache does)
        const slot = new Uint8Array(f.manifest.pieceLength).fill(0xab)
        expect(await store.readPieceInto(last, slot)).toBe(lastSize)
        expect(eq(slot.subarray(0, lastSize), f.pieceOf(last))).toBe(true)
        expect(slot.subarray(lastSize).every(b => b === 0xab)).toBe(true)
        // a view at an offset into a larger buffer: nothing outside the view is touched
        const backing = new Uint8Array(f.manifest.pieceLength + 20).fill(0xcd)
        const view = backing.subarray(10, 10 + f.manifest.pieceLength)
        expect(await store.readPieceInto(1, view)).toBe(f.manifest.pieceLength)
        expect(eq(view, f.pieceOf(1))).toBe(true)
        expect(backing.subarray(0, 10).every(b => b === 0xcd)).toBe(true)
        expect(backing.subarray(10 + f.manifest.pieceLength).every(b => b === 0xcd)).toBe(true)
        // an unwritten piece reads as zeros here too, over whatever the slot held
        const fresh = await download(f.manifest)
        const dirty = new Uint8Array(f.manifest.pieceLength).fill(0x11)
        expect(await fresh.readPieceInto(0, dirty)).toBe(f.manifest.pieceLength)
        expect(dirty.every(b => b === 0)).toBe(true)
        dirty.fill(0x11)
        expect(await fresh.readPieceInto(last, dirty)).toBe(lastSize)
        expect(dirty.subarray(0, lastSize).every(b => b === 0)).toBe(true)
        expect(dirty.subarray(lastSize).every(b => b === 0x11)).toBe(true)
        // too small a buffer is refused and left alone
        const small = new Uint8Array(f.manifest.pieceLength - 1).fill(0x22)
        await expect(store.readPieceInto(0, small)).rejects.toThrow(StorageError)
        expect(small.every(b => b === 0x22)).toBe(true)
      })

      check('bad-arguments', 'bad pieces, offsets, lengths and sizes are refused with a StorageError, and nothing is corrupted', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        const last = f.n - 1
        const lastSize = pieceSize(f.manifest, last)
        const pl = f.manifest.pieceLength
        const bad: Array<[string, () => Promise<unknown>, RegExp]> = [
          ['piece past the end', async () => await store.readBlock(f.n, 0, 16), /out of range/],
          ['negative piece', async () => await store.readBlock(-1, 0, 16), /out of range/],
          ['fractional piece', async () => await store.readBlock(1.5, 0, 16), /out of range/],
          ['NaN piece', async () => await store.readBlock(Number.NaN, 0, 16), /out of range/],
          ['infinite piece', async () => await store.readBlock(Number.POSITIVE_INFINITY, 0, 16), /out of range/],
          ['offset at the piece end', async () => await store.readBlock(0, pl, 1), /outside piece/],
          ['block running past the piece', async () => await store.readBlock(0, pl - 10, 11), /outside piece/],
          ['block running past the short last piece', async () => await store.readBlock(last, 0, lastSize + 1), /outside piece/],
          ['a full piece\'s length from the short last piece', async () => await store.readBlock(last, 0, pl), /outside piece/],
          ['negative offset', async () => await store.readBlock(0, -1, 10), /outside piece/],
          ['fractional offset', async () => await store.readBlock(0, 0.5, 10), /outside piece/],
          ['zero length', async () => await store.readBlock(0, 0, 0), /outside piece/],
          ['negative length', async () => await store.readBlock(0, 10, -5), /outside piece/],
          ['NaN length', async () => await store.readBlock(0, 0, Number.NaN), /outside piece/],
          ['readPiece past the end', async () => await store.readPiece(f.n), /out of range/],
          ['readPieceInto past the end', async () => await store.readPieceInto(f.n, new Uint8Array(pl)), /out of range/],
          ['verifyPiece past the end', async () => await store.verifyPiece(f.n), /out of range/],
          ['verifyPiece negative', async () => await store.verifyPiece(-1), /out of range/],
          ['write past the end', async () => await store.writePiece(f.n, new Uint8Array(pl)), /out of range/],
          ['write negative piece', async () => await store.writePiece(-1, new Uint8Array(pl)), /out of range/],
          ['write too short', async () => await store.writePiece(0, new Uint8Array(100).fill(9)), /needs \d+ bytes/],
          ['write too long', async () => await store.writePiece(0, new Uint8Array(pl + 1).fill(9)), /needs \d+ bytes/],
          ['write a full piece into the short last one', async () => await store.writePiece(last, new Uint8Array(pl).fill(9)), /needs \d+ bytes/],
          ['chunks adding up to too much', async () => await store.writePiece(1, [new Uint8Array(pl).fill(9), new Uint8Array(1)]), /needs \d+ bytes/],
          ['no chunks', async () => await store.writePiece(1, []), /needs \d+ bytes/]
        ]
        for (const [what, call, message] of bad) {
          const err = await call().then(() => undefined, (e: unknown) => e)
          expect(err, what).toBeInstanceOf(StorageError)
          expect((err as Error).message, what).toMatch(message)
        }
        // a rejected write wrote nothing, not even a prefix
        await expectIntact(store, f)
      })

      check('async-errors', 'refusals are rejected promises, never synchronous throws', async () => {
        // callers chain .then() on these (the piece cache) or fire several at once
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        const calls: Array<() => Promise<unknown>> = [
          () => store.readBlock(-1, 0, 1),
          () => store.readBlock(0, -1, 1),
          () => store.readPiece(f.n),
          () => store.readPieceInto(0, new Uint8Array(1)),
          () => store.verifyPiece(f.n),
          () => store.writePiece(0, new Uint8Array(1))
        ]
        for (const call of calls) {
          let pending: Promise<unknown> | undefined
          expect(() => { pending = call() }).not.toThrow()
          await expect(pending).rejects.toThrow(StorageError)
        }
        await store.close()
        for (const call of [() => store.readPiece(0), () => store.writePiece(0, f.pieceOf(0)), () => store.sync()]) {
          let pending: Promise<unknown> | undefined
          expect(() => { pending = call() }).not.toThrow()
          await expect(pending).rejects.toThrow(StorageError)
        }
      })

      check('concurrent', 'concurrent writes of different pieces and concurrent reads all land intact', async () => {
        // pieces are verified, and so written, several at once; verifyStore reads four at once
        const f = fixture(SHAPES[3])
        const store = await download(f.manifest)
        await Promise.all(Array.from({ length: f.n }, async (_, p) => { await store.writePiece(p, asChunks(f.pieceOf(p), p)) }))
        const verified = await Promise.all(Array.from({ length: f.n }, async (_, p) => await store.verifyPiece(p)))
        expect(verified.every(Boolean)).toBe(true)
        const reads = await Promise.all(Array.from({ length: f.n * 4 }, async (_, i) => await store.readBlock(i % f.n, 100 * i, 99)))
        reads.forEach((got, i) => expect(eq(got, f.pieceOf(i % f.n).subarray(100 * i, 100 * i + 99))).toBe(true))
      })

      check('sync', 'sync reports the file size and an mtime, and writing goes on after it', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        const before = await store.sync()
        // the resume record compares these with the part file: the full, preallocated size
        expect(before.size).toBe(f.manifest.length)
        expect(Number.isFinite(before.mtimeMs)).toBe(true)
        await store.writePiece(0, f.pieceOf(0))
        const after = await store.sync()
        expect(after.size).toBe(f.manifest.length)
        expect(after.mtimeMs).toBeGreaterThanOrEqual(before.mtimeMs)
        await store.writePiece(1, f.pieceOf(1))
        expect(await store.verifyPiece(0)).toBe(true)
        expect(await store.verifyPiece(1)).toBe(true)
      })

      check('finalize', 'finalize keeps the data readable, stops writes, clears partPath, and is idempotent', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        const path = store.path
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        await store.finalize()
        expect(store.partPath).toBeUndefined()
        expect(store.path).toBe(path)
        expect(eq(await backend.finished(store), f.data)).toBe(true)
        // a finished download goes on seeding from the same store
        await expectIntact(store, f)
        const err = await store.writePiece(0, new Uint8Array(f.pieceOf(0)).fill(7)).then(() => undefined, (e: unknown) => e)
        expect(err).toBeInstanceOf(StorageError)
        expect((err as Error).message).toMatch(/read-only/)
        await store.finalize()
        expect((await store.sync()).size).toBe(f.manifest.length)
        await expectIntact(store, f)
        expect(eq(await backend.finished(store), f.data)).toBe(true)
      })

      check('close', 'close is idempotent; afterwards every read, sync and finalize is refused as closed', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        await store.writePiece(0, f.pieceOf(0))
        await store.close()
        await store.close()
        await Promise.all([store.close(), store.close()])
        const calls: Array<() => Promise<unknown>> = [
          async () => await store.readBlock(0, 0, 1),
          async () => await store.readPiece(0),
          async () => await store.readPieceInto(0, new Uint8Array(f.manifest.pieceLength)),
          async () => await store.verifyPiece(0),
          async () => await store.sync(),
          // never finalized: a closed download cannot be given its final name
          async () => await store.finalize()
        ]
        for (const call of calls) await expect(call()).rejects.toThrow(/closed/)
        for (const call of calls) await expect(call()).rejects.toThrow(StorageError)
      })

      check('close-write', 'writes after close are refused with a StorageError', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        await store.close()
        await expect(store.writePiece(0, f.pieceOf(0))).rejects.toThrow(StorageError)
        await expect(store.writePiece(1, [f.pieceOf(1)])).rejects.toThrow(StorageError)
      })

      check('close-write-says-closed', 'a write after close says the store is closed (not some other reason)', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        await store.close()
        await expect(store.writePiece(0, f.pieceOf(0))).rejects.toThrow(/closed/)
      })

      check('close-after-finalize', 'a finalized store closes, and is closed for reads afterwards', async () => {
        const f = fixture(MAIN)
        const store = await download(f.manifest)
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        await store.finalize()
        await store.close()
        await store.close()
        await expect(store.readPiece(0)).rejects.toThrow(/closed/)
        // finalizing again is still the no-op it was
        await store.finalize()
      })

      check('read-racing-close', 'a read racing close gives the right bytes or a StorageError, never wrong bytes', async () => {
        const f = fixture(SHAPES[3])
        const store = await download(f.manifest)
        for (let p = 0; p < f.n; p++) await store.writePiece(p, f.pieceOf(p))
        const reads = Array.from({ length: f.n }, async (_, p) => await store.readPiece(p))
        await store.close()
        const settled = await Promise.allSettled(reads)
        settled.forEach((r, p) => {
          if (r.status === 'fulfilled') expect(eq(r.value, f.pieceOf(p))).toBe(true)
          else expect(r.reason).toBeInstanceOf(StorageError)
        })
      })

      check('empty', 'an empty file: no pieces to read or write; sync and finalize work', async () => {
        const data = new Uint8Array(0)
        const m = manifestOf(data, 16384)
        const store = await download(m)
        await expect(store.readBlock(0, 0, 1)).rejects.toThrow(StorageError)
        await expect(store.readPiece(0)).rejects.toThrow(StorageError)
        await expect(store.verifyPiece(0)).rejects.toThrow(StorageError)
        await expect(store.writePiece(0, new Uint8Array(0))).rejects.toThrow(StorageError)
        expect((await store.sync()).size).toBe(0)
        await store.finalize()
        expect(store.partPath).toBeUndefined()
        expect((await backend.finished(store)).byteLength).toBe(0)
      })

      check('independent', 'two stores of the same manifest do not share data', async () => {
        const f = fixture(MAIN)
        const a = await download(f.manifest)
        const b = await download(f.manifest)
        await a.writePiece(0, f.pieceOf(0))
        expect(await a.verifyPiece(0)).toBe(true)
        expect(await b.verifyPiece(0)).toBe(false)
      })
    })

    inGroup('seed store', () => {
      for (const shape of SHAPES) {
        check(`seed-roundtrip/${shape.title}`, `serves the file byte-exact: ${shape.title}`, async () => {
          const f = fixture(shape, 2)
          const input = new Uint8Array(f.data)
          const store = await seed(f.manifest, input)
          // the caller's buffer is not the store's: changing it afterwards changes nothing served
          input.fill(0)
          await expectIntact(store, f)
          for (let p = 0; p < f.n; p++) expect(eq(await store.readPiece(p), f.pieceOf(p))).toBe(true)
        })
      }

      check('seed-read-only', 'refuses writes as read-only, even of the right bytes; finalize is a no-op', async () => {
        const f = fixture(MAIN, 2)
        const store = await seed(f.manifest, f.data)
        expect(store.partPath).toBeUndefined()
        for (const data of [f.pieceOf(0), new Uint8Array(f.pieceOf(0).length).fill(5)]) {
          await expect(store.writePiece(0, data)).rejects.toThrow(StorageError)
          await expect(store.writePiece(0, data)).rejects.toThrow(/read-only/)
        }
        await store.finalize()
        await store.finalize()
        expect(store.partPath).toBeUndefined()
        expect((await store.sync()).size).toBe(f.manifest.length)
        await expectIntact(store, f)
      })

      check('seed-bad-arguments', 'out-of-range reads of a seed store are refused with a StorageError', async () => {
        const f = fixture(MAIN, 2)
        const store = await seed(f.manifest, f.data)
        await expect(store.readBlock(f.n, 0, 1)).rejects.toThrow(StorageError)
        await expect(store.readBlock(f.n - 1, 0, pieceSize(f.manifest, f.n - 1) + 1)).rejects.toThrow(StorageError)
        await expect(store.readBlock(0, -1, 1)).rejects.toThrow(StorageError)
        await expect(store.readPieceInto(0, new Uint8Array(10))).rejects.toThrow(StorageError)
        await expectIntact(store, f)
      })

      check('seed-close', 'close is idempotent; reads are refused as closed; finalize stays a no-op', async () => {
        const f = fixture(MAIN, 2)
        const store = await seed(f.manifest, f.data)
        await store.close()
        await store.close()
        await expect(store.readBlock(0, 0, 1)).rejects.toThrow(/closed/)
        await expect(store.verifyPiece(0)).rejects.toThrow(StorageError)
        await expect(store.sync()).rejects.toThrow(StorageError)
        await expect(store.writePiece(0, f.pieceOf(0))).rejects.toThrow(StorageError)
        await store.finalize()
      })

      check('seed-empty', 'an empty file seeds: nothing to read, sync says 0 bytes', async () => {
        const data = new Uint8Array(0)
        const m = manifestOf(data, 16384)
        const store = await seed(m, data)
        await expect(store.readPiece(0)).rejects.toThrow(StorageError)
        expect((await store.sync()).size).toBe(0)
        await store.finalize()
      })
    })

    // a typo in knownFailures would silently skip nothing: refuse it at collection time
    for (const id of Object.keys(backend.knownFailures ?? {})) {
      if (!ids.has(id)) throw new Error(`knownFailures names no conformance case: ${id}`)
    }
  })
}
