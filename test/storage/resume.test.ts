import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Manifest } from '../../src/manifest/manifest.js'
import { createManifest } from '../../src/storage/manifest-file.js'
import { readResume, ResumeWriter, verifyStore, writeResume } from '../../src/storage/resume.js'
import { openDownloadStore, openSeedStore } from '../../src/storage/storage.js'

describe('resume records', () => {
  let dir: string
  let manifest: Manifest
  let cid: string
  let data: Uint8Array

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-resume-'))
    data = new Uint8Array(randomBytes(5 * 16384 + 99))
    await writeFile(join(dir, 'src.bin'), data)
    const m = await createManifest(join(dir, 'src.bin'), { pieceLength: 16384, name: 'file.bin' })
    manifest = m.manifest
    cid = m.cid.toString()
  })

  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function partialDownload (pieces: number[]): Promise<{ partPath: string }> {
    const store = await openDownloadStore(join(dir, 'out'), manifest, cid)
    for (const p of pieces) await store.writePiece(p, data.subarray(p * 16384, Math.min(data.length, (p + 1) * 16384)))
    const have = await verifyStore(store, manifest)
    await writeResume(store, cid, have)
    const partPath = store.partPath as string
    await store.close()
    return { partPath }
  }

  it('the fast path: a record that matches the part file is trusted', async () => {
    const { partPath } = await partialDownload([0, 2, 5])
    const have = await readResume(partPath, cid, manifest)
    expect(have == null ? [] : [0, 1, 2, 3, 4, 5].filter(i => have.get(i))).toEqual([0, 2, 5])
  })

  it('a single file\'s record keeps its format: version, cid, size, mtimeMs, pieces', async () => {
    const { partPath } = await partialDownload([0, 2])
    const text = await readFile(partPath.replace(/\.part$/, '.resume'), 'utf8')
    const record = JSON.parse(text) as Record<string, unknown>
    expect(Object.keys(record)).toEqual(['version', 'cid', 'size', 'mtimeMs', 'pieces'])
    expect(record.version).toBe(1)
    expect(record.cid).toBe(cid)
    expect(record.size).toBe(manifest.length)
    expect(record.pieces).toBe(Buffer.from([0b10100000]).toString('base64'))
  })

  it('a part file touched after the record (a crash, an edit) is not trusted', async () => {
    const { partPath } = await partialDownload([1])
    await utimes(partPath, new Date(), new Date(Date.now() + 5000))
    expect(await readResume(partPath, cid, manifest)).toBeUndefined()
  })

  it('a record for another manifest, or a garbled one, is not trusted', async () => {
    const { partPath } = await partialDownload([1])
    expect(await readResume(partPath, 'bafyreiother', manifest)).toBeUndefined()
    await writeFile(partPath.replace(/\.part$/, '.resume'), '{"version":1,')
    expect(await readResume(partPath, cid, manifest)).toBeUndefined()
  })

  it('a record is only a claim: verifyStore hashes what it vouches for and drops a tampered piece', async () => {
    const { partPath } = await partialDownload([0, 2, 5])
    // keep the timestamps (touch -r keeps nanoseconds) to put them back as an attacker would,
    // so that the fast path's size + mtime check still passes
    const stamp = join(dir, 'stamp')
    await writeFile(stamp, '')
    execFileSync('touch', ['-r', partPath, stamp])
    const fh = await open(partPath, 'r+')
    await fh.write(new Uint8Array([0xff, 0xff]), 0, 2, 2 * 16384 + 7) // inside piece 2
    await fh.close()
    execFileSync('touch', ['-r', stamp, partPath])
    const vouched = await readResume(partPath, cid, manifest)
    if (vouched == null) throw new Error('the fast path did not apply')
    const store = await openDownloadStore(join(dir, 'out'), manifest, cid)
    const have = await verifyStore(store, manifest, vouched)
    await store.close()
    expect([0, 1, 2, 3, 4, 5].filter(i => have.get(i))).toEqual([0, 5])
  })

  it('a resume record that is a symlink is neither trusted nor written through', async () => {
    const { partPath } = await partialDownload([1])
    const recordPath = partPath.replace(/\.part$/, '.resume')
    const elsewhere = join(dir, 'elsewhere.json')
    await writeFile(elsewhere, await readFile(recordPath))
    await rm(recordPath)
    await symlink(elsewhere, recordPath)
    expect(await readResume(partPath, cid, manifest)).toBeUndefined()
    const store = await openDownloadStore(join(dir, 'out'), manifest, cid)
    const before = await readFile(elsewhere, 'utf8')
    await writeResume(store, cid, await verifyStore(store, manifest))
    await store.close()
    expect(await readFile(elsewhere, 'utf8')).toBe(before) // the link was replaced, not followed
    expect(await readResume(partPath, cid, manifest)).toBeDefined()
  })

  it('hashing again finds exactly the pieces that verify', async () => {
    const store = await openDownloadStore(join(dir, 'out'), manifest, cid)
    await store.writePiece(3, data.subarray(3 * 16384, 4 * 16384))
    await store.writePiece(4, new Uint8Array(16384).fill(7)) // garbage in slot 4
    const have = await verifyStore(store, manifest)
    expect([0, 1, 2, 3, 4, 5].filter(i => have.get(i))).toEqual([3])
    await store.close()
    const seed = await openSeedStore(join(dir, 'src.bin'), manifest)
    expect((await verifyStore(seed, manifest)).isComplete()).toBe(true)
    await seed.close()
  })

  it('the writer batches records and never throws', async () => {
    const store = await openDownloadStore(join(dir, 'out'), manifest, cid)
    const have = await verifyStore(store, manifest)
    const logs: string[] = []
    const writer = new ResumeWriter({ store, cid, have: () => have, log: (m) => logs.push(m), delayMs: 10 })
    writer.touch()
    writer.touch()
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(await readResume(store.partPath as string, cid, manifest)).toBeDefined()
    await store.close()
    await writer.flush() // the store is closed: the write fails, is logged once, and does not throw
    expect(logs).toHaveLength(1)
  })
})
