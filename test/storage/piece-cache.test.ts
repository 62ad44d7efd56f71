import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createManifest } from '../../src/storage/manifest-file.js'
import { PieceCache } from '../../src/storage/piece-cache.js'
import { openSeedStore, type PieceStore } from '../../src/storage/storage.js'

describe('PieceCache', () => {
  let dir: string
  let store: PieceStore
  let data: Uint8Array
  let pieceReads: number

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-cache-'))
    data = new Uint8Array(randomBytes(5 * 16384 + 100))
    await writeFile(join(dir, 'f'), data)
    const { manifest } = await createManifest(join(dir, 'f'), { pieceLength: 32768 })
    const real = await openSeedStore(join(dir, 'f'), manifest)
    pieceReads = 0
    store = new Proxy(real, {
      get (target, prop, receiver) {
        if (prop === 'readPieceInto') return async (piece: number, into: Uint8Array) => { pieceReads++; return await target.readPieceInto(piece, into) }
        return Reflect.get(target, prop, receiver)
      }
    })
  })

  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('reads a piece once and serves its blocks from memory', async () => {
    const cache = new PieceCache(store, 32768, 4 * 32768)
    expect(await cache.readBlock(1, 0, 16384)).toEqual(data.subarray(32768, 49152))
    expect(await cache.readBlock(1, 16384, 16384)).toEqual(data.subarray(49152, 65536))
    expect(await cache.readBlock(2, 0, 16384 + 100)).toEqual(data.subarray(65536, 65536 + 16384 + 100))
    expect(pieceReads).toBe(2)
  })

  it('stays within its capacity, dropping the least recently used piece', async () => {
    const cache = new PieceCache(store, 32768, 4 * 32768) // 4 pieces
    for (const p of [0, 1, 2, 0]) await cache.readBlock(p, 0, 100)
    expect(pieceReads).toBe(3)
    await cache.readBlock(2, 0, 100) // all three still cached
    expect(pieceReads).toBe(3)
  })

  it('reads blocks directly when pieces are too large to cache', async () => {
    const cache = new PieceCache(store, 32768, 32768)
    expect(await cache.readBlock(0, 100, 50)).toEqual(data.subarray(100, 150))
    expect(pieceReads).toBe(0)
  })

  it('hands out copies: a block stays intact after its slot holds another piece', async () => {
    const cache = new PieceCache(store, 32768, 4 * 32768) // 4 slots, 3 pieces in the file
    const first = await cache.readBlock(0, 0, 16384)
    // pieces 1 and 2 take the other slots; then piece 0 is evicted and read again
    for (const p of [1, 2, 0, 1, 2]) await cache.readBlock(p, 0, 100)
    expect(first).toEqual(data.subarray(0, 16384))
    first.fill(0) // and changing a copy does not change what the cache serves
    expect(await cache.readBlock(0, 0, 16384)).toEqual(data.subarray(0, 16384))
  })

  it('never reuses a slot while readers wait on it, and serves concurrent readers right', async () => {
    const cache = new PieceCache(store, 32768, 4 * 32768)
    const wanted = Array.from({ length: 40 }, (_, i) => ({ piece: i % 3, offset: (i * 1000) % 15000, length: 1000 + i }))
    const got = await Promise.all(wanted.map(async w => await cache.readBlock(w.piece, w.offset, w.length)))
    got.forEach((g, i) => {
      const start = wanted[i].piece * 32768 + wanted[i].offset
      expect(g).toEqual(data.subarray(start, start + wanted[i].length))
    })
  })

  it('with pieceSize, reads a block that is a whole piece straight, not through a slot', async () => {
    const size = (piece: number): number => piece === 2 ? 16384 + 100 : 32768
    const cache = new PieceCache(store, 32768, 4 * 32768, size)
    expect(await cache.readBlock(2, 0, 16384 + 100)).toEqual(data.subarray(65536, 65536 + 16384 + 100))
    expect(pieceReads).toBe(0)
    // a block of part of a piece still goes through the cache
    expect(await cache.readBlock(1, 0, 16384)).toEqual(data.subarray(32768, 49152))
    expect(await cache.readBlock(1, 16384, 16384)).toEqual(data.subarray(49152, 65536))
    expect(pieceReads).toBe(1)
  })

  it('a failed read is not cached', async () => {
    const cache = new PieceCache(store, 32768, 4 * 32768)
    await expect(cache.readBlock(0, 32000, 1000)).rejects.toThrow(RangeError) // past the piece's end
    await store.close()
    await expect(cache.readBlock(1, 0, 10)).rejects.toThrow(/closed/)
    await expect(cache.readBlock(1, 0, 10)).rejects.toThrow(/closed/)
    expect(pieceReads).toBe(3)
  })
})
