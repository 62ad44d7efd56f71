/**
 * What only the folder stores have (the shared behaviour is in conformance.test.ts): folders on
 * the way, empty files and folders, Unicode names, a bounded number of open files, selection,
 * merging into an existing folder, never replacing a file, and planted symlinks.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { comparePaths, folderManifest } from '../../src/manifest/manifest.js'
import { verifyStore } from '../../src/storage/resume.js'
import { folderSpecOf, openFolderDownloadStore, openFolderSeedStore, wantedPieces, type FolderStore } from '../../src/storage/folder-store.js'
import { InlineCalls } from '../../src/storage/inline-calls.js'
import { StorageError, type PieceStore } from '../../src/storage/storage.js'
import { testBytes } from './conformance.js'
import { folderFixture, snapshot, writeFolder, type FolderFixture } from './folder-fixture.js'

const KEY = 'bafyfoldertestkey'
const STAGING = `.bitswarm-${KEY}.parts`
const PL = 16384

let dir: string
/** where downloads go */
let out: string
/** outside `out`: what a planted link points at; must never change */
let outside: string
const opened: PieceStore[] = []
const track = <T extends PieceStore>(s: T): T => { opened.push(s); return s }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bitswarm-folder-'))
  out = join(dir, 'out')
  outside = join(dir, 'outside')
  await mkdir(join(outside, 'sub'), { recursive: true })
  await writeFile(join(outside, 'victim.txt'), 'precious')
  await writeFile(join(outside, 'sub', 'f0.bin'), 'also precious')
})

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close()
  await rm(dir, { recursive: true, force: true })
})

/** a folder of nested files, an empty file, an empty folder and Unicode names */
function sample (): FolderFixture {
  return folderFixture([
    { path: ['README'], data: testBytes(100, 1) },
    { path: ['empty.txt'], data: new Uint8Array(0) },
    { path: ['sub', 'f0.bin'], data: testBytes(2 * PL + 5, 2) },
    { path: ['sub', 'deeper', 'f1.bin'], data: testBytes(PL, 3) },
    { path: ['ünïcødé', '日本語.txt'], data: testBytes(3000, 4) },
    { path: ['ünïcødé', '🙂 smile'], data: testBytes(PL + 1, 5) }
  ], PL, [['empty-folder'], ['sub', 'nothing', 'here']])
}

async function writeAll (store: FolderStore, fx: FolderFixture, files?: number[]): Promise<void> {
  for (const span of fx.layout.files) {
    if (files !== undefined && !files.includes(span.index)) continue
    for (let p = span.firstPiece; p < span.firstPiece + span.pieceCount; p++) await store.writePiece(p, fx.pieceOf(p))
  }
}

async function download (fx: FolderFixture, options: Parameters<typeof openFolderDownloadStore>[3] = {}): Promise<FolderStore> {
  return track(await openFolderDownloadStore(out, fx.spec, KEY, options))
}

const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

describe('folder download', () => {
  // the sample's files are all small: they go to the pack, or (packFilesUpTo 0) part files of their own
  for (const [packFilesUpTo, staged] of [[undefined, ['pack']], [0, ['0', '2', '3', '4', '5']]] as const) {
    // fileSystemSync: one syncfs before the names (sync-fs.ts), or an fdatasync per file
    for (const fileSystemSync of [true, false]) {
      it(`lands nested folders, an empty file, empty folders and Unicode names in <out>/<name>/, nothing before finalize (staged: ${staged.join(', ')}; ${fileSystemSync ? 'one syncfs' : 'fdatasync each'})`, async () => {
        await landsWhole(packFilesUpTo, [...staged], fileSystemSync)
      })
    }
  }

  async function landsWhole (packFilesUpTo: number | undefined, staged: string[], fileSystemSync: boolean): Promise<void> {
    const fx = sample()
    const store = await download(fx, { packFilesUpTo, fileSystemSync })
    expect(store.path).toBe(join(out, 'folder'))
    expect(store.partPath).toBe(join(out, STAGING))
    expect(store.reusedPart).toBe(false)
    await writeAll(store, fx)
    // written so far: the pack, or part files named by index, one per file with bytes
    expect((await readdir(out)).sort()).toEqual([STAGING])
    expect((await readdir(join(out, STAGING))).sort()).toEqual(staged)
    expect((await stat(join(out, STAGING))).mode & 0o777).toBe(0o700)
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
    await store.finalize()
    expect(store.partPath).toBeUndefined()
    expect(await readdir(out)).toEqual(['folder'])
    for (const f of fx.files) expect(eq(await readFile(join(out, 'folder', ...f.path)), f.data)).toBe(true)
    for (const folder of fx.emptyFolders) {
      const at = join(out, 'folder', ...folder)
      expect((await lstat(at)).isDirectory()).toBe(true)
      expect(await readdir(at)).toEqual([])
    }
    // goes on seeding from the placed files, read-only
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
    await expect(store.writePiece(0, fx.pieceOf(0))).rejects.toThrow(/read-only/)
    // and a seed store of the result serves the same
    const seed = track(await openFolderSeedStore(join(out, 'folder'), fx.spec))
    expect((await verifyStore(seed, fx.layout.pieceCount)).isComplete()).toBe(true)
  }

  it('small files go to the pack and larger ones to part files of their own; finalize places both and removes the staging folder', async () => {
    const files = [
      { path: ['big', 'one.bin'], data: testBytes(5 * PL + 3, 20) }, // 80 KiB: a part file
      { path: ['a.txt'], data: testBytes(700, 21) },
      { path: ['big', 'edge.bin'], data: testBytes(4 * PL, 22) }, // exactly 64 KiB: packed
      { path: ['big', 'over.bin'], data: testBytes(4 * PL + 1, 23) }, // one byte more: a part file
      { path: ['z', 'tiny'], data: testBytes(1, 24) }
    ]
    const fx = folderFixture(files, PL)
    const store = await download(fx)
    // last file first: slots go by file, not by the order pieces arrive in
    for (let p = fx.layout.pieceCount - 1; p >= 0; p--) await store.writePiece(p, fx.pieceOf(p))
    expect((await readdir(join(out, STAGING))).sort()).toEqual(['0', '3', 'pack'])
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
    for (let p = 0; p < fx.layout.pieceCount; p++) expect(eq(await store.readBlock(p, 0, fx.layout.pieceSize(p)), fx.pieceOf(p))).toBe(true)
    await store.finalize()
    expect(await readdir(out)).toEqual(['folder'])
    expect(await snapshot(out)).toEqual(await snapshotOf(fx, [0, 1, 2, 3, 4]))
    // each a file of its own: one name each, not hard-linked to anything else
    for (const f of files) expect((await stat(join(out, 'folder', ...f.path))).nlink).toBe(1)
    // goes on serving from the placed files
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
  })

  it('pieces written together land in the pack together (one call for neighbouring slots), each where it belongs', async () => {
    // 40 one-piece files, written at once in a scrambled order, then some pieces of multi-piece ones
    const files = Array.from({ length: 40 }, (_, i) => ({ path: [`f${String(i).padStart(2, '0')}`], data: testBytes(1000 + i * 97, 30 + i) }))
    files.push({ path: ['m', 'three'], data: testBytes(2 * PL + 123, 90) })
    const fx = folderFixture(files, PL)
    const store = await download(fx)
    const order = Array.from({ length: fx.layout.pieceCount }, (_, p) => p).sort((a, b) => ((a * 7919) % 43) - ((b * 7919) % 43))
    await Promise.all(order.map(async (p) => { await store.writePiece(p, fx.pieceOf(p)) }))
    expect((await readdir(join(out, STAGING)))).toEqual(['pack'])
    for (let p = 0; p < fx.layout.pieceCount; p++) expect(eq(await store.readBlock(p, 0, fx.layout.pieceSize(p)), fx.pieceOf(p))).toBe(true)
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
    await store.finalize()
    expect(await snapshot(out)).toEqual(await snapshotOf(fx, files.map((_, i) => i)))
  })

  it('a piece is read back at once, written or still waiting for the end of the turn; sync() and close() see every write', async () => {
    const fx = sample()
    const store = await download(fx)
    // not awaited: the write waits for the end of this turn of the event loop
    const written = store.writePiece(0, fx.pieceOf(0))
    expect(eq(await store.readBlock(0, 0, fx.layout.pieceSize(0)), fx.pieceOf(0))).toBe(true)
    await written
    const before = await store.sync()
    const again = store.writePiece(0, fx.pieceOf(0))
    // the record's digest is taken after the write lands, so it describes it
    const after = await store.sync()
    await again
    expect(after.parts).not.toBeUndefined()
    expect((await store.sync()).parts).toBe(after.parts)
    expect(before.parts).not.toBe(undefined)
    const last = store.writePiece(4, fx.pieceOf(4))
    await store.close()
    await last
    const reopened = await download(fx)
    expect((await verifyStore(reopened, fx.layout.pieceCount)).get(4)).toBe(true)
  })

  it('reads during finalize are served whole while the files move out of the pack and the pack is cut short', async () => {
    // 192 files of 40,000 bytes: 7.3 MiB in the pack, cut short in steps as finalize goes
    const files = Array.from({ length: 192 }, (_, i) => ({ path: [`d${i % 5}`, `f${i}`], data: testBytes(40_000, 100 + i) }))
    const fx = folderFixture(files, PL)
    const store = await download(fx)
    for (let p = 0; p < fx.layout.pieceCount; p++) await store.writePiece(p, fx.pieceOf(p))
    let finalized = false
    const finalizing = store.finalize().finally(() => { finalized = true })
    let reads = 0
    const reader = async (seed: number): Promise<void> => {
      for (let k = seed; !finalized || reads < 200; k += 7) {
        const p = (k * 7919) % fx.layout.pieceCount
        expect(eq(await store.readPiece(p), fx.pieceOf(p))).toBe(true)
        reads++
      }
    }
    await Promise.all([finalizing, reader(1), reader(2), reader(3)])
    expect(await snapshot(out)).toEqual(await snapshotOf(fx, files.map((_, i) => i)))
  })

  // with the pack and inline calls, small files hold no handle but the pack; with part files and
  // every call on the thread pool, the LRU of handles keeps them bounded
  for (const options of [{}, { packFilesUpTo: 0, inlineCalls: false }]) {
    it(`keeps the open file handles bounded over many small files (${JSON.stringify(options)})`, async () => {
      await boundedHandles(options)
    })
  }

  async function boundedHandles (options: { packFilesUpTo?: number, inlineCalls?: boolean }): Promise<void> {
    // 1,500 files of a few hundred bytes, 4 handles at most while idle
    const files = Array.from({ length: 1500 }, (_, i) => ({ path: [`d${i % 7}`, `file-${i}.txt`], data: testBytes(100 + (i % 300), i + 10) }))
    const fx = folderFixture(files, PL)
    const max = 4
    const store = await download(fx, { maxOpenFiles: max, ...options })
    // handles this process has open on files under `dir` (Linux: /proc/self/fd)
    const fdsHere = async (): Promise<number> => {
      let n = 0
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(join('/proc/self/fd', fd)).catch(() => '')
        if (target.startsWith(dir)) n++
      }
      return n
    }
    const canCount = existsSync('/proc/self/fd')
    let peak = 0
    for (let p = 0; p < fx.layout.pieceCount; p++) {
      await store.writePiece(p, fx.pieceOf(p))
      if (canCount && p % 100 === 0) peak = Math.max(peak, await fdsHere())
    }
    // verifyStore reads four pieces at once: at most `max` idle handles plus those four
    expect((await verifyStore(store, fx.layout.pieceCount)).isComplete()).toBe(true)
    if (canCount) peak = Math.max(peak, await fdsHere())
    await store.finalize()
    for (let p = 0; p < fx.layout.pieceCount; p += 37) expect(eq(await store.readPiece(p), fx.pieceOf(p))).toBe(true)
    if (canCount) {
      peak = Math.max(peak, await fdsHere())
      expect(peak).toBeGreaterThan(0)
      expect(peak).toBeLessThanOrEqual(max + 4)
    }
    expect((await readdir(join(out, 'folder', 'd3'))).length).toBe(files.filter(f => f.path[0] === 'd3').length)
    const seed = track(await openFolderSeedStore(join(out, 'folder'), fx.spec, { maxOpenFiles: max, inlineCalls: options.inlineCalls }))
    expect((await verifyStore(seed, fx.layout.pieceCount)).isComplete()).toBe(true)
    if (canCount) expect(await fdsHere()).toBeLessThanOrEqual(2 * max)
  }

  it('writes only selected files: the others are refused and never appear on disk', async () => {
    const fx = sample()
    const selected = [2, 5, 1] // sub/f0.bin, the smile, the empty file
    const wanted = wantedPieces(fx.layout, selected)
    const pieces = fx.layout.files.filter(f => selected.includes(f.index)).reduce((n, f) => n + f.pieceCount, 0)
    expect(wanted.count()).toBe(pieces)
    expect(wantedPieces(fx.layout).isComplete()).toBe(true)
    expect(() => wantedPieces(fx.layout, [99])).toThrow(RangeError)

    const store = await download(fx, { selected })
    expect([...store.selected].sort()).toEqual([1, 2, 5])
    for (let p = 0; p < fx.layout.pieceCount; p++) {
      if (wanted.get(p)) continue
      const err = await store.writePiece(p, fx.pieceOf(p)).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(StorageError)
      expect((err as Error).message).toMatch(/not selected/)
      // an unselected file reads as a hole and does not verify; nothing is hashed or opened for it
      expect(await store.verifyPiece(p)).toBe(false)
    }
    // finalize before the selection is written is refused, naming the file
    await store.writePiece(fx.layout.files[2].firstPiece, fx.pieceOf(fx.layout.files[2].firstPiece))
    await expect(store.finalize()).rejects.toThrow(/ünïcødé\/🙂 smile was never written/)
    await writeAll(store, fx, selected)
    const have = await verifyStore(store, fx.layout.pieceCount)
    for (let p = 0; p < fx.layout.pieceCount; p++) expect(have.get(p)).toBe(wanted.get(p))
    await store.finalize()
    // only the selected files, the folders on their way, no empty folders (none were asked for)
    expect(await snapshot(join(out))).toEqual((await snapshotOf(fx, selected)))
    expect(existsSync(join(out, STAGING))).toBe(false)

    // a partial seeder serves what it has: the selected files; the rest is not held
    const seed = track(await openFolderSeedStore(join(out, 'folder'), fx.spec, { selected }))
    expect(await verifyStore(seed, fx.layout.pieceCount)).toEqual(have)
    await expect(seed.readBlock(fx.layout.files[0].firstPiece, 0, 10)).rejects.toThrow(/does not hold/)
    await expect(openFolderSeedStore(join(out, 'folder'), fx.spec)).rejects.toThrow(/README is missing/)
    await expect(openFolderDownloadStore(out, fx.spec, KEY, { selected: [6] })).rejects.toThrow(StorageError)
  })

  it('makes the empty folders it is given with a selection', async () => {
    const fx = sample()
    const store = await download(fx, { selected: [1], emptyFolders: [['sub', 'nothing', 'here']] })
    await store.finalize()
    expect(await snapshot(out)).toEqual([
      'dir folder',
      'file folder/empty.txt e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'dir folder/sub',
      'dir folder/sub/nothing',
      'dir folder/sub/nothing/here'
    ])
  })

  it('merges into a folder an earlier selection left, never replacing a file there', async () => {
    const fx = sample()
    const first = await download(fx, { selected: [0, 2] })
    await writeAll(first, fx, [0, 2])
    await first.finalize()
    await first.close()
    const readmeInode = (await stat(join(out, 'folder', 'README'))).ino

    // a second run selects more, the first run's files among them
    const second = await download(fx, { selected: [0, 2, 3] })
    expect([...second.existingFiles].sort()).toEqual([0, 2])
    expect(second.reusedPart).toBe(true) // their pieces need checking
    const have = await verifyStore(second, fx.layout.pieceCount)
    for (const i of [0, 2]) {
      const f = fx.layout.files[i]
      for (let p = f.firstPiece; p < f.firstPiece + f.pieceCount; p++) expect(have.get(p)).toBe(true)
      await expect(second.writePiece(f.firstPiece, fx.pieceOf(f.firstPiece))).rejects.toThrow(/already there/)
    }
    await writeAll(second, fx, [3])
    await second.finalize()
    expect((await stat(join(out, 'folder', 'README'))).ino).toBe(readmeInode)
    expect(await snapshot(out)).toEqual(await snapshotOf(fx, [0, 2, 3]))

    // a file of another size where a selected file goes is refused up front
    await writeFile(join(out, 'folder', 'ünïcødé'), 'in the way')
    await expect(openFolderDownloadStore(out, fx.spec, KEY, { selected: [4] })).rejects.toThrow(/ünïcødé is in the way/)
    await writeFile(join(out, 'folder', 'sub', 'deeper', 'f1.bin'), 'not this manifest\'s')
    await expect(openFolderDownloadStore(out, fx.spec, KEY, { selected: [3] })).rejects.toThrow(/f1\.bin already exists: move it away first/)
  })

  it('finalize never replaces a file that appeared meanwhile, and places nothing when one did', async () => {
    const fx = sample()
    const store = await download(fx)
    await writeAll(store, fx)
    const staged = await snapshot(join(out, STAGING))
    await mkdir(join(out, 'folder', 'sub', 'deeper'), { recursive: true })
    await writeFile(join(out, 'folder', 'sub', 'deeper', 'f1.bin'), 'mine')
    await expect(store.finalize()).rejects.toThrow(/f1\.bin: something by that name appeared during the download/)
    expect(await readFile(join(out, 'folder', 'sub', 'deeper', 'f1.bin'), 'utf8')).toBe('mine')
    // checked before anything was placed: no other file is there, everything is still staged
    expect(await snapshot(join(out, 'folder'))).toEqual(['dir sub', 'dir sub/deeper', `file sub/deeper/f1.bin ${sha('mine')}`])
    expect(await snapshot(join(out, STAGING))).toEqual(staged)
    // moved away, finalize goes through
    await rm(join(out, 'folder', 'sub', 'deeper', 'f1.bin'))
    await store.finalize()
    for (const f of fx.files) expect(eq(await readFile(join(out, 'folder', ...f.path)), f.data)).toBe(true)
  })

  it('a part file swapped for another file is neither read as ours nor finalized', async () => {
    const fx = sample()
    const store = await download(fx, { maxOpenFiles: 1, packFilesUpTo: 0 })
    await writeAll(store, fx)
    await writeFile(join(dir, 'evil'), new Uint8Array(fx.files[2].data.length).fill(9))
    await rename(join(dir, 'evil'), join(out, STAGING, '2'))
    // the handle was closed (one open at a time): reopening finds another inode
    await expect(store.readPiece(fx.layout.files[2].firstPiece)).rejects.toThrow(/was replaced/)
    await expect(store.finalize()).rejects.toThrow(/was replaced/)
    expect(existsSync(join(out, 'folder', 'sub', 'f0.bin'))).toBe(false)
  })

  it('the pack swapped for another file is not finalized: nothing is placed', async () => {
    const fx = sample()
    const store = await download(fx)
    await writeAll(store, fx)
    const evil = join(dir, 'evil')
    await writeFile(evil, new Uint8Array(64 * 1024).fill(9))
    await rename(evil, join(out, STAGING, 'pack'))
    // read and written through the descriptor opened at the start: still our own bytes
    expect(eq(await store.readPiece(0), fx.pieceOf(0))).toBe(true)
    await expect(store.finalize()).rejects.toThrow(/pack was replaced during the download/)
    expect(existsSync(join(out, 'folder'))).toBe(false)
  })

  it('a part file hard-linked to another file is not written through', async () => {
    const fx = sample()
    await mkdir(join(out, STAGING), { recursive: true, mode: 0o700 })
    await writeFile(join(outside, 'big'), new Uint8Array(fx.files[2].data.length).fill(1))
    await link(join(outside, 'big'), join(out, STAGING, '2'))
    // and the pack, as an earlier run's pack would start (a valid header: only its links make it not ours)
    await writeFile(join(outside, 'pack'), Buffer.concat([Buffer.from('BSWPACK1', 'latin1'), Buffer.from([1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0])]))
    await link(join(outside, 'pack'), join(out, STAGING, 'pack'))
    const before = await snapshot(outside)
    const store = await download(fx)
    expect(store.reusedPart).toBe(false)
    await writeAll(store, fx)
    await store.finalize()
    expect(await snapshot(outside)).toEqual(before)
  })

  it('takes a folder manifest through folderSpecOf', async () => {
    // a manifest lists its files in byte-wise path order
    const fx = sample()
    const sorted = folderFixture([...fx.files].sort((a, b) => comparePaths(a.path, b.path)), PL, fx.emptyFolders)
    const pieces = new Uint8Array(sorted.layout.pieceCount * 32)
    for (let p = 0; p < sorted.layout.pieceCount; p++) pieces.set(sorted.spec.pieceHash(p), p * 32)
    const m = folderManifest({ name: 'folder', pieceLength: PL, files: sorted.files.map(f => ({ path: f.path, length: f.data.length })), folders: fx.emptyFolders, pieces })
    const spec = folderSpecOf(m)
    expect(spec.layout.files.map(f => f.path)).toEqual(sorted.files.map(f => f.path))
    const store = track(await openFolderDownloadStore(out, spec, KEY))
    await writeAll(store, sorted)
    expect((await verifyStore(store, m)).isComplete()).toBe(true)
    await store.finalize()
    for (const f of fx.files) expect(eq(await readFile(join(out, 'folder', ...f.path)), f.data)).toBe(true)
    expect((await lstat(join(out, 'folder', 'sub', 'nothing', 'here'))).isDirectory()).toBe(true)
  })

  it('a seed store does not follow a link in place of a file', async () => {
    const fx = sample()
    await writeFolder(join(dir, 'share'), fx)
    await rm(join(dir, 'share', 'README'))
    await writeFile(join(outside, 'README'), fx.files[0].data)
    await symlink(join(outside, 'README'), join(dir, 'share', 'README'))
    await expect(openFolderSeedStore(join(dir, 'share'), fx.spec)).rejects.toThrow(/README is a symbolic link/)
    // planted after opening: the open with O_NOFOLLOW refuses it
    await rm(join(dir, 'share', 'README'))
    await writeFile(join(dir, 'share', 'README'), fx.files[0].data)
    const seed = track(await openFolderSeedStore(join(dir, 'share'), fx.spec, { maxOpenFiles: 1 }))
    await rm(join(dir, 'share', 'README'))
    await symlink(join(outside, 'README'), join(dir, 'share', 'README'))
    await expect(seed.readPiece(0)).rejects.toThrow(StorageError)
  })

  it('refuses unsafe names even if a manifest slipped through', async () => {
    const bad = [
      folderFixture([{ path: ['..', 'x'], data: testBytes(10) }], PL),
      folderFixture([{ path: ['a/b'], data: testBytes(10) }], PL),
      folderFixture([{ path: [''], data: testBytes(10) }], PL),
      folderFixture([{ path: ['ok'], data: testBytes(10) }], PL, [['.']]),
      folderFixture([{ path: ['ok'], data: testBytes(10) }], PL, [], '..'),
      folderFixture([{ path: ['ok'], data: testBytes(10) }], PL, [], `.bitswarm-${KEY}.parts`)
    ]
    for (const fx of bad) await expect(openFolderDownloadStore(out, fx.spec, KEY)).rejects.toThrow(StorageError)
    expect(existsSync(out)).toBe(false) // refused before anything was made
  })
})

describe('planted symlinks: writes never leave the out folder', () => {
  /** the tree outside `out` before the test; checked unchanged after (bytes, and nothing new) */
  let before: string[]
  beforeEach(async () => { before = await snapshot(outside) })
  afterEach(async () => { expect(await snapshot(outside)).toEqual(before) })

  /** a download of the sample that must come out whole */
  async function completes (fx: FolderFixture): Promise<void> {
    const store = await download(fx)
    await writeAll(store, fx)
    await store.finalize()
    for (const f of fx.files) {
      const at = join(out, 'folder', ...f.path)
      expect((await lstat(at)).isFile()).toBe(true)
      expect(eq(await readFile(at), f.data)).toBe(true)
    }
  }

  it('(a) at the staging folder, before the download: the link is replaced by a folder of our own', async () => {
    await mkdir(out)
    await symlink(outside, join(out, STAGING))
    await completes(sample())
    expect(existsSync(join(out, STAGING))).toBe(false)
  })

  it('(a) at the staging folder, during the download: refused, not followed', async () => {
    const fx = sample()
    const store = await download(fx, { packFilesUpTo: 0 })
    await store.writePiece(0, fx.pieceOf(0))
    await rename(join(out, STAGING), join(dir, 'moved-away'))
    await symlink(outside, join(out, STAGING))
    await expect(store.writePiece(fx.layout.files[2].firstPiece, fx.pieceOf(fx.layout.files[2].firstPiece))).rejects.toThrow(/\.parts was replaced during the download/)
    await expect(store.finalize()).rejects.toThrow(StorageError)
    expect(existsSync(join(out, 'folder'))).toBe(false)
  })

  it('(a) at the staging folder, during a download into the pack: not followed, and finalize refuses', async () => {
    const fx = sample()
    const store = await download(fx)
    await store.writePiece(0, fx.pieceOf(0))
    await rename(join(out, STAGING), join(dir, 'moved-away'))
    await symlink(outside, join(out, STAGING))
    // a small file's piece goes through the pack's descriptor: into our own pack, moved away
    // with its folder, never through the link (the afterEach finds `outside` unchanged)
    await writeAll(store, fx)
    await expect(store.finalize()).rejects.toThrow(/\.parts was replaced during the download/)
    expect(existsSync(join(out, 'folder'))).toBe(false)
  })

  it('(b) at a part file or the pack, before the download: the link is removed, never followed', async () => {
    await mkdir(join(out, STAGING), { recursive: true, mode: 0o700 })
    await symlink(join(outside, 'sub', 'f0.bin'), join(out, STAGING, '2'))
    await symlink(join(outside, 'nowhere'), join(out, STAGING, '3')) // dangling: O_CREAT would create its target
    await symlink(join(outside, 'victim.txt'), join(out, STAGING, 'pack'))
    await completes(sample())
    expect(existsSync(join(outside, 'nowhere'))).toBe(false)
    // and with a dangling link at the pack
    await rm(out, { recursive: true })
    await mkdir(join(out, STAGING), { recursive: true, mode: 0o700 })
    await symlink(join(outside, 'nowhere'), join(out, STAGING, 'pack'))
    await completes(sample())
    expect(existsSync(join(outside, 'nowhere'))).toBe(false)
  })

  it('(b) at a part file, during the download: not placed, the final name stays free', async () => {
    const fx = sample()
    const store = await download(fx, { packFilesUpTo: 0 })
    await writeAll(store, fx)
    await rm(join(out, STAGING, '2'))
    await symlink(join(outside, 'sub', 'f0.bin'), join(out, STAGING, '2'))
    await expect(store.finalize()).rejects.toThrow(/sub\/f0\.bin: .*was replaced during the download/)
    expect(existsSync(join(out, 'folder', 'sub', 'f0.bin'))).toBe(false)
  })

  it('(b) at the pack, during the download: refused, nothing placed, the final names stay free', async () => {
    const fx = sample()
    const store = await download(fx)
    await writeAll(store, fx)
    await rm(join(out, STAGING, 'pack'))
    await symlink(join(outside, 'victim.txt'), join(out, STAGING, 'pack'))
    await expect(store.finalize()).rejects.toThrow(/pack was replaced during the download/)
    expect(existsSync(join(out, 'folder'))).toBe(false)
  })

  it('(c) at <out>/<name>: refused with an error naming it, nothing made', async () => {
    await mkdir(out)
    await symlink(outside, join(out, 'folder'))
    await expect(download(sample())).rejects.toThrow(`${join(out, 'folder')} is a symbolic link`)
    expect(await readdir(out)).toEqual(['folder'])
  })

  it('(c) at <out>/<name>, planted during the download: finalize refuses it', async () => {
    const fx = sample()
    const store = await download(fx)
    await writeAll(store, fx)
    const staged = await snapshot(join(out, STAGING))
    await symlink(outside, join(out, 'folder'))
    await expect(store.finalize()).rejects.toThrow(`${join(out, 'folder')} is a symbolic link`)
    expect(await snapshot(join(out, STAGING))).toEqual(staged)
  })

  it('(d) at a folder on the way to a file: refused up front, and at finalize', async () => {
    const fx = sample()
    await mkdir(join(out, 'folder'), { recursive: true })
    await symlink(outside, join(out, 'folder', 'sub'))
    await expect(download(fx)).rejects.toThrow(`${join(out, 'folder', 'sub')} is a symbolic link`)
    await rm(join(out, 'folder', 'sub'))

    const store = await download(fx)
    await writeAll(store, fx)
    // deeper this time: sub/ is real, sub/deeper is the link
    await mkdir(join(out, 'folder', 'sub'))
    await symlink(join(outside, 'sub'), join(out, 'folder', 'sub', 'deeper'))
    await expect(store.finalize()).rejects.toThrow(`${join(out, 'folder', 'sub', 'deeper')} is a symbolic link`)
    // an empty folder's name too
    await rm(join(out, 'folder', 'sub', 'deeper'))
    await symlink(outside, join(out, 'folder', 'empty-folder'))
    await expect(store.finalize()).rejects.toThrow(`${join(out, 'folder', 'empty-folder')} is a symbolic link`)
    await rm(join(out, 'folder', 'empty-folder'))
    await store.finalize()
  })

  it('(e) at a final file name: refused up front; planted later, finalize leaves the link alone', async () => {
    const fx = sample()
    await mkdir(join(out, 'folder', 'sub'), { recursive: true })
    await symlink(join(outside, 'sub', 'f0.bin'), join(out, 'folder', 'sub', 'f0.bin'))
    await expect(download(fx)).rejects.toThrow(/sub\/f0\.bin already exists/)
    await rm(join(out, 'folder', 'sub', 'f0.bin'))

    const store = await download(fx)
    await writeAll(store, fx)
    await symlink(join(outside, 'sub', 'f0.bin'), join(out, 'folder', 'sub', 'f0.bin'))
    await symlink(join(outside, 'new-file'), join(out, 'folder', 'empty.txt')) // dangling, at an empty file's name
    await expect(store.finalize()).rejects.toThrow(/appeared during the download/)
    expect(await readlink(join(out, 'folder', 'sub', 'f0.bin'))).toBe(join(outside, 'sub', 'f0.bin'))
    await rm(join(out, 'folder', 'sub', 'f0.bin'))
    await expect(store.finalize()).rejects.toThrow(/empty\.txt: something by that name appeared/)
    expect(existsSync(join(outside, 'new-file'))).toBe(false)
    await rm(join(out, 'folder', 'empty.txt'))
    await store.finalize()
  })

  it('a placed file swapped for a link after finalize is not read as ours', async () => {
    const fx = sample()
    const store = await download(fx, { maxOpenFiles: 1 })
    await writeAll(store, fx)
    await store.finalize()
    await rm(join(out, 'folder', 'README'))
    await symlink(join(outside, 'victim.txt'), join(out, 'folder', 'README'))
    await store.readPiece(fx.layout.files[2].firstPiece) // the one handle goes to another file
    await expect(store.readPiece(0)).rejects.toThrow(StorageError)
  })
})

describe('inline calls on small files', () => {
  const busy = (ms: number): void => { const end = performance.now() + ms; while (performance.now() < end) {} }

  it('go back to the thread pool for good once calls are slow, not for a few slow ones among many', () => {
    const inline = new InlineCalls()
    expect(inline.on).toBe(true)
    for (let i = 0; i < 1000; i++) expect(inline.run(() => i)).toBe(i)
    // 9 calls over 5 ms among 1,009: a busy machine, not a slow file system
    for (let i = 0; i < 9; i++) inline.run(() => { busy(6) })
    expect(inline.on).toBe(true)
    expect(inline.io).toBe(inline)
    // more than 1 in 64 slow: the file system is slow
    for (let i = 0; i < 8 && inline.on; i++) inline.run(() => { busy(6) })
    expect(inline.on).toBe(false)
    expect(inline.io).not.toBe(inline)
    // a call that throws is counted and its error passed on
    expect(() => inline.run(() => { throw new Error('boom') })).toThrow('boom')
    expect(new InlineCalls(false).on).toBe(false)
  })

  it('let the event loop turn while a loop of them never waits for anything', async () => {
    const inline = new InlineCalls()
    let turned = false
    setImmediate(() => { turned = true })
    const t0 = performance.now()
    // each pace() resolves at once for a while, as an inline read would: the immediate still runs
    while (!turned && performance.now() - t0 < 2000) await inline.pace()
    expect(turned).toBe(true)
    expect(performance.now() - t0).toBeLessThan(500)
  })
})

/** What `out` holds after a finished download of `selected` (and no empty folders). */
async function snapshotOf (fx: FolderFixture, selected: number[]): Promise<string[]> {
  const want = await mkdtemp(join(dir, 'want-'))
  await writeFolder(join(want, 'folder'), { files: fx.files.filter((_, i) => selected.includes(i)) })
  const lines = await snapshot(want)
  await rm(want, { recursive: true })
  return lines
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex')
