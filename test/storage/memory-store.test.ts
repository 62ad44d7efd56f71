/** What only the in-memory store has; the shared behaviour is in conformance.test.ts. */
import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { pieceCount } from '../../src/manifest/manifest.js'
import { openMemoryDownloadStore, openMemorySeedStore } from '../../src/storage/memory-store.js'
import { PieceCache } from '../../src/storage/piece-cache.js'
import { ResumeWriter, verifyStore } from '../../src/storage/resume.js'
import { StorageError } from '../../src/storage/storage.js'
import { manifestOf, testBytes } from './conformance.js'

const data = testBytes(3 * 16384 + 500)
const manifest = manifestOf(data, 16384)

describe('memory store', () => {
  it('names itself in messages; a path can be given', async () => {
    const store = openMemoryDownloadStore(manifest)
    expect(store.path).toBe('memory:file.bin')
    await expect(store.readPiece(9)).rejects.toThrow('memory:file.bin: piece 9 out of range [0, 4)')
    expect(openMemoryDownloadStore(manifest, { path: 'x' }).path).toBe('x')
  })

  it('toBytes gives a copy of the file, holes as zeros', async () => {
    const store = openMemoryDownloadStore(manifest)
    await store.writePiece(1, data.subarray(16384, 32768))
    const bytes = store.toBytes()
    expect(bytes.length).toBe(data.length)
    expect(bytes.subarray(0, 16384).every(b => b === 0)).toBe(true)
    expect(Buffer.from(bytes.subarray(16384, 32768)).equals(data.subarray(16384, 32768))).toBe(true)
    expect(bytes.subarray(32768).every(b => b === 0)).toBe(true)
    bytes.fill(1)
    expect(await store.verifyPiece(1)).toBe(true)
    await store.close()
    expect(() => store.toBytes()).toThrow(/closed/)
  })

  it('has no part file: no resume record is written, and nothing was reused', async () => {
    const store = openMemoryDownloadStore(manifest)
    expect(store.partPath).toBeUndefined()
    expect(store.reusedPart).toBe(false)
    // ResumeWriter skips stores without a part file
    let syncs = 0
    const counting = new Proxy(store, {
      get (target, prop, receiver) {
        if (prop === 'sync') return async () => { syncs++; return await target.sync() }
        return Reflect.get(target, prop, receiver)
      }
    })
    const writer = new ResumeWriter({ store: counting, cid: 'x', have: () => new Bitfield(pieceCount(manifest)) })
    await writer.flush()
    expect(syncs).toBe(0)
  })

  it('refuses seed data of the wrong size and unusable manifests', () => {
    expect(() => openMemorySeedStore(manifest, data.subarray(1))).toThrow(StorageError)
    expect(() => openMemorySeedStore(manifest, data.subarray(1))).toThrow(`memory:file.bin has ${data.length - 1} bytes, manifest says ${data.length}`)
    expect(() => openMemoryDownloadStore({ ...manifest, length: -1 })).toThrow(StorageError)
    expect(() => openMemoryDownloadStore({ ...manifest, pieceLength: 0 })).toThrow(StorageError)
    expect(() => openMemoryDownloadStore({ ...manifest, length: Number.NaN })).toThrow(StorageError)
  })

  it('works under verifyStore and the piece cache, as the swarm uses them', async () => {
    const store = openMemoryDownloadStore(manifest)
    for (const p of [0, 3]) await store.writePiece(p, data.subarray(p * 16384, Math.min(data.length, (p + 1) * 16384)))
    const have = await verifyStore(store, manifest)
    expect([0, 1, 2, 3].map(p => have.get(p))).toEqual([true, false, false, true])
    const cache = new PieceCache(openMemorySeedStore(manifest, data), 16384, 4 * 16384)
    expect(Buffer.from(await cache.readBlock(3, 100, 400)).equals(data.subarray(3 * 16384 + 100, 3 * 16384 + 500))).toBe(true)
  })
})
