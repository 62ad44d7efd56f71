/**
 * Resuming a folder download: the staging folder's part files and pack are found again and reused,
 * and the resume record (a digest of every part file's and the pack's size, mtime and inode) is
 * trusted only while the staging folder is exactly as it described. Every case runs with the small
 * files in the pack (the default) and with part files for all (packFilesUpTo 0).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { link, mkdir, mkdtemp, open, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Bitfield } from '../../src/bitfield.js'
import { openFolderDownloadStore, type FolderStore } from '../../src/storage/folder-store.js'
import { readResume, ResumeWriter, verifyStore, writeResume } from '../../src/storage/resume.js'
import type { PieceStore } from '../../src/storage/storage.js'
import { testBytes } from './conformance.js'
import { folderFixture, type FolderFixture } from './folder-fixture.js'

const CID = 'bafyfolderresume'
const PL = 16384
let dir: string
let out: string
let fx: FolderFixture
const opened: PieceStore[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bitswarm-folder-resume-'))
  out = join(dir, 'out')
  fx = folderFixture([
    { path: ['a.bin'], data: testBytes(3 * PL + 10, 1) }, // pieces 0-3
    { path: ['empty'], data: new Uint8Array(0) },
    { path: ['d', 'b.bin'], data: testBytes(2 * PL, 2) }, // pieces 4-5
    { path: ['d', 'e', 'c.bin'], data: testBytes(500, 3) } // piece 6
  ], PL, [['nothing']])
})

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close()
  await rm(dir, { recursive: true, force: true })
})

/** the case's layout of the staging folder: packFilesUpTo 0 (part files), or the default (the pack) */
let packFilesUpTo: number | undefined

async function openStore (options: Parameters<typeof openFolderDownloadStore>[3] = {}): Promise<FolderStore> {
  const store = await openFolderDownloadStore(out, fx.spec, CID, { packFilesUpTo, ...options })
  opened.push(store)
  return store
}

const list = (bf: Bitfield | undefined): number[] => bf == null ? [] : Array.from({ length: bf.size }, (_, i) => i).filter(i => bf.get(i))
const N = (): number => fx.layout.pieceCount

/** A run that wrote `pieces`, recorded them, and then stopped as kill -9 would: no close, no finalize. */
async function killedRun (pieces: number[]): Promise<FolderStore> {
  const store = await openStore()
  for (const p of pieces) await store.writePiece(p, fx.pieceOf(p))
  await writeResume(store, CID, await verifyStore(store, N()))
  return store
}

for (const mode of ['pack', 'part files'] as const) describe(`folder resume (${mode})`, () => {
  const packed = mode === 'pack'
  beforeEach(() => { packFilesUpTo = packed ? undefined : 0 })

  it('a restarted download finds its part files, and the record\'s fast path vouches for what it wrote', async () => {
    const first = await killedRun([0, 2, 5])
    const partPath = first.partPath as string
    expect(partPath).toBe(join(out, `.bitswarm-${CID}.parts`))
    const record = JSON.parse(await readFile(join(out, `.bitswarm-${CID}.resume`), 'utf8')) as Record<string, unknown>
    expect(Object.keys(record)).toEqual(['version', 'cid', 'parts', 'pieces'])
    expect(record.version).toBe(1)
    expect(record.parts).toMatch(/^[0-9a-f]{64}$/)

    const second = await openStore()
    expect(second.reusedPart).toBe(true)
    const vouched = await readResume(second.partPath as string, CID, N())
    expect(list(vouched)).toEqual([0, 2, 5])
    expect(list(await verifyStore(second, N(), vouched))).toEqual([0, 2, 5])
    // finishes from there: only the rest is written
    for (const p of [1, 3, 4, 6]) await second.writePiece(p, fx.pieceOf(p))
    expect((await verifyStore(second, N())).isComplete()).toBe(true)
    await second.finalize()
    for (const f of fx.files) expect(Buffer.from(await readFile(join(out, 'folder', ...f.path))).equals(Buffer.from(f.data))).toBe(true)
    expect(existsSync(join(out, 'folder', 'nothing'))).toBe(true)
    expect(existsSync(partPath)).toBe(false)
  })

  it(`writes after the record (${packed ? 'the pack grown, touched, removed' : 'a new part file, a touched one, a removed one'}) send a restart down the slow path`, async () => {
    const first = await killedRun([0, 4])
    const partPath = first.partPath as string
    expect(list(await readResume(partPath, CID, N()))).toEqual([0, 4])

    // killed after writing piece 6 (its file's first write: a new part file, or the pack's last
    // slot, which makes the pack longer) without a record
    await first.writePiece(6, fx.pieceOf(6))
    expect(await readResume(partPath, CID, N())).toBeUndefined()
    const second = await openStore()
    // every piece hashed again: piece 6 is found too
    expect(list(await verifyStore(second, N(), await readResume(partPath, CID, N())))).toEqual([0, 4, 6])

    await writeResume(second, CID, await verifyStore(second, N()))
    expect(list(await readResume(partPath, CID, N()))).toEqual([0, 4, 6])
    await utimes(join(partPath, packed ? 'pack' : '2'), new Date(), new Date(Date.now() + 5000))
    expect(await readResume(partPath, CID, N())).toBeUndefined()

    // a change this store did not make stays distrusted by its later records (sync() re-stats only
    // the files it wrote): a restart hashes everything, and its own records are trusted again
    await writeResume(second, CID, await verifyStore(second, N()))
    expect(await readResume(partPath, CID, N())).toBeUndefined()
    const third = await openStore()
    await writeResume(third, CID, await verifyStore(third, N()))
    expect(list(await readResume(partPath, CID, N()))).toEqual([0, 4, 6])
    await rm(join(partPath, packed ? 'pack' : '3'))
    expect(await readResume(partPath, CID, N())).toBeUndefined()
  })

  it('a record is only a claim: a tampered piece with its mtime put back is hashed and dropped', async () => {
    const first = await killedRun([0, 1, 4])
    await first.close()
    const part = join(first.partPath as string, packed ? 'pack' : '0')
    // piece 1 in the part file of a.bin, or wherever its slot put it in the pack
    const at = packed ? (await readFile(part)).indexOf(Buffer.from(fx.pieceOf(1))) : PL
    expect(at).toBeGreaterThan(0)
    const stamp = join(dir, 'stamp')
    await writeFile(stamp, '')
    execFileSync('touch', ['-r', part, stamp])
    const fh = await open(part, 'r+')
    await fh.write(new Uint8Array([0xff, 0xff]), 0, 2, at + 7) // inside piece 1
    await fh.close()
    execFileSync('touch', ['-r', stamp, part])
    const second = await openStore()
    const vouched = await readResume(second.partPath as string, CID, N())
    if (vouched == null) throw new Error('the fast path did not apply')
    expect(list(await verifyStore(second, N(), vouched))).toEqual([0, 4])
  })

  it('a record for another download, a garbled one, or one beside a file is not trusted', async () => {
    const first = await killedRun([4])
    const partPath = first.partPath as string
    expect(await readResume(partPath, 'bafyother', N())).toBeUndefined()
    // a folder record never passes for a single file's part file, nor the other way round
    expect(await readResume(join(out, `.bitswarm-${CID}.part`), CID, N())).toBeUndefined()
    await writeFile(join(out, `.bitswarm-${CID}.resume`), '{"version":1,')
    expect(await readResume(partPath, CID, N())).toBeUndefined()
  })

  it('the resume writer keeps a folder record and removes it when done', async () => {
    const store = await openStore()
    await store.writePiece(6, fx.pieceOf(6))
    const have = await verifyStore(store, N())
    const writer = new ResumeWriter({ store, cid: CID, have: () => have, delayMs: 5 })
    writer.touch()
    await new Promise(resolve => setTimeout(resolve, 40))
    expect(list(await readResume(store.partPath as string, CID, N()))).toEqual([6])
    await writer.done(store.partPath as string)
    expect(existsSync(join(out, `.bitswarm-${CID}.resume`))).toBe(false)
  })

  it('a finalize cut short after linking some files resumes: those files are found at their names', async () => {
    const first = await openStore()
    for (let p = 0; p < N(); p++) await first.writePiece(p, fx.pieceOf(p))
    const staging = first.partPath as string
    // as if killed inside finalize: a.bin linked to its name, its part name not yet removed (a
    // small file's part made there by the copy out of the pack)
    await mkdir(join(out, 'folder'), { recursive: true })
    if (packed) await writeFile(join(staging, '0'), fx.files[0].data)
    await link(join(staging, '0'), join(out, 'folder', 'a.bin'))
    const second = await openStore()
    expect([...second.existingFiles]).toEqual([0])
    // the hard-linked part name is dropped, not the file
    expect((await readdir(staging)).sort()).toEqual(packed ? ['pack'] : ['2', '3'])
    expect((await verifyStore(second, N())).isComplete()).toBe(true)
    await second.finalize()
    for (const f of fx.files) expect(Buffer.from(await readFile(join(out, 'folder', ...f.path))).equals(Buffer.from(f.data))).toBe(true)
  })

  it('another selection later: the earlier run\'s parts of files not selected now are kept for a later run', async () => {
    const first = await killedRun([0, 1]) // a.bin, partly
    await first.close()
    const second = await openStore({ selected: [2] })
    expect(second.reusedPart).toBe(true)
    // its pieces are still read (a partial seeder may serve them) but not written
    expect(list(await verifyStore(second, N()))).toEqual([0, 1])
    await expect(second.writePiece(2, fx.pieceOf(2))).rejects.toThrow(/not selected/)
    for (const p of [4, 5]) await second.writePiece(p, fx.pieceOf(p))
    await second.finalize()
    expect(await readdir(join(out, 'folder'))).toEqual(['d'])
    expect(await readdir(second.partPath ?? join(out, `.bitswarm-${CID}.parts`))).toEqual([packed ? 'pack' : '0'])
    await second.close()
    // and a third run for a.bin picks it up (d/b.bin, placed but not selected now, is not looked at)
    const third = await openStore({ selected: [0] })
    expect(third.reusedPart).toBe(true)
    expect(list(await verifyStore(third, N()))).toEqual([0, 1])
    expect([...third.existingFiles]).toEqual([])
    for (const p of [2, 3]) await third.writePiece(p, fx.pieceOf(p))
    await third.finalize()
    expect((await readdir(join(out, 'folder'))).sort()).toEqual(['a.bin', 'd'])
    expect(existsSync(join(out, `.bitswarm-${CID}.parts`))).toBe(false)
  })
})
