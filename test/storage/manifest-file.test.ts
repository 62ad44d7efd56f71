// createManifest on folders: the walk (what is kept, what is refused), hashing from disk,
// determinism, progress and abort.
import { createHash } from 'node:crypto'
import { appendFileSync, truncateSync } from 'node:fs'
import { mkdir, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  InvalidManifestError, manifestLayout, MAX_DEPTH, MAX_MANIFEST_BYTES, pieceCount, pieceHash, type FolderManifest
} from '../../src/manifest/manifest.js'
import {
  createManifest, FileChangedError, readManifestFile, UnsupportedEntryError, writeManifestFile, type CreateManifestProgress
} from '../../src/storage/manifest-file.js'

const KiB = 1024
const MiB = 1024 * KiB

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'bitswarm-folder-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

let n = 0
/** a fresh folder `name` under a fresh parent, with `files` (path -> content) and empty `folders` */
async function tree (files: Record<string, Uint8Array | string>, folders: string[] = [], name = 'share'): Promise<string> {
  const root = join(dir, `t${n++}`, name)
  await mkdir(root, { recursive: true })
  for (const [path, data] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true })
    await writeFile(join(root, path), data)
  }
  for (const f of folders) await mkdir(join(root, f), { recursive: true })
  return root
}

const bytes = (length: number, seed: number): Uint8Array => new Uint8Array(length).map((_, i) => (i * 31 + seed + (i >> 9)) & 0xff)
const sha = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest()

describe('createManifest of a folder', () => {
  it('keeps nested folders, empty files and empty folders, sorted byte-wise', async () => {
    const root = await tree({ 'b.txt': 'b', 'a/z.txt': 'z', 'a/y/empty': '', 'Ω/é.txt': 'é', '～': '1', '🐝': '2' }, ['e', 'a/y/void', 'only/inner'])
    const { manifest } = await createManifest(root)
    if (manifest.version !== 2) throw new Error('not a folder manifest')
    expect(manifest.name).toBe('share')
    expect(manifest.files.map(f => f.path.join('/'))).toEqual(['a/y/empty', 'a/z.txt', 'b.txt', 'Ω/é.txt', '～', '🐝'])
    expect(manifest.folders.map(p => p.join('/'))).toEqual(['a/y/void', 'e', 'only/inner'])
    expect(manifest.length).toBe(1 + 1 + 0 + 2 + 1 + 1) // the content 'é' is two bytes
    expect(pieceCount(manifest)).toBe(5) // the empty file has none
  })

  it('hashes each file on its own, across read chunks and file tails', async () => {
    // 1 MiB reads: with 4 MiB pieces a piece spans reads, and the file ends mid-piece for every size
    const big = bytes(2 * MiB + 5 * KiB + 3, 1)
    const small = bytes(100, 2)
    const mid = bytes(40000, 3)
    const root = await tree({ '1-big.bin': big, '2-empty': '', '3-small.bin': small, '4-mid.bin': mid })
    for (const pl of [16 * KiB, 64 * KiB, 4 * MiB]) {
      const { manifest, bytes: encoded } = await createManifest(root, { pieceLength: pl })
      const layout = manifestLayout(manifest)
      const data = [big, new Uint8Array(0), small, mid]
      let piece = 0
      for (const [i, f] of layout.files.entries()) {
        expect(f.firstPiece).toBe(piece)
        for (let k = 0; k < f.pieceCount; k++, piece++) {
          expect(Buffer.from(pieceHash(manifest, piece)).equals(sha(data[i].subarray(k * pl, (k + 1) * pl)))).toBe(true)
        }
      }
      expect(piece).toBe(pieceCount(manifest))
      // what we made, peers accept
      const file = join(dir, `m${n++}.manifest`)
      await writeManifestFile(file, encoded)
      expect((await readManifestFile(file)).manifest).toEqual(manifest)
    }
  })

  it('is deterministic: the same folder made in another order, elsewhere, gives the same CID', async () => {
    const files: Record<string, string> = {}
    for (let i = 0; i < 60; i++) files[`d${i % 7}/f${(i * 37) % 60}.txt`] = `file ${i}\n`.repeat(i)
    const entries = Object.entries(files)
    const one = await tree(Object.fromEntries(entries), ['x/empty', 'y'])
    const two = await tree(Object.fromEntries(entries.reverse()), ['y', 'x/empty'])
    const a = await createManifest(one)
    const b = await createManifest(two)
    expect(b.cid.toString()).toBe(a.cid.toString())
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true)
    expect((await createManifest(one)).cid.toString()).toBe(a.cid.toString())
    // the name is part of the identity
    expect((await createManifest(one, { name: 'other' })).cid.toString()).not.toBe(a.cid.toString())
  })

  it('an empty folder, and a folder of empty folders', async () => {
    const empty = await tree({})
    const m = await createManifest(empty)
    expect(m.manifest).toMatchObject({ version: 2, length: 0, files: [], folders: [] })
    expect(pieceCount(m.manifest)).toBe(0)
    const nested = await tree({}, ['a/b/c', 'd'])
    expect((await createManifest(nested)).manifest).toMatchObject({ files: [], folders: [['a', 'b', 'c'], ['d']] })
  })

  it('chooses the piece length on the total and honours an explicit one', async () => {
    const root = await tree({ a: bytes(10, 1) })
    expect((await createManifest(root)).manifest.pieceLength).toBe(16 * KiB)
    expect((await createManifest(root, { pieceLength: 256 * KiB })).manifest.pieceLength).toBe(256 * KiB)
    await expect(createManifest(root, { pieceLength: 3000 })).rejects.toThrow(InvalidManifestError)
  })

  it('names the folder after the path, whatever its spelling', async () => {
    const root = await tree({ a: 'a' }, [], 'photos')
    expect((await createManifest(root + '/')).manifest.name).toBe('photos')
    expect((await createManifest(join(root, 'x', '..'))).manifest.name).toBe('photos')
  })

  it('follows a link given as the path itself, never one inside', async () => {
    const root = await tree({ a: 'a' })
    const link = join(dir, `link${n++}`)
    await symlink(root, link)
    const { manifest } = await createManifest(link)
    expect(manifest).toMatchObject({ version: 2, files: [{ path: ['a'], length: 1 }] })
  })

  it('a report every chunk and every file, ending at the totals', async () => {
    const root = await tree({ a: bytes(3 * MiB, 1), b: 'bb', c: '' })
    const seen: CreateManifestProgress[] = []
    await createManifest(root, { onProgress: p => seen.push(p) })
    expect(seen[0]).toEqual({ files: 0, totalFiles: 3, bytes: 0, totalBytes: 3 * MiB + 2 })
    expect(seen.at(-1)).toEqual({ files: 3, totalFiles: 3, bytes: 3 * MiB + 2, totalBytes: 3 * MiB + 2 })
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i].bytes).toBeGreaterThanOrEqual(seen[i - 1].bytes)
      expect(seen[i].files).toBeGreaterThanOrEqual(seen[i - 1].files)
    }
    // a single file reports too
    const single: CreateManifestProgress[] = []
    await createManifest(join(root, 'b'), { onProgress: p => single.push(p) })
    expect(single.at(-1)).toEqual({ files: 1, totalFiles: 1, bytes: 2, totalBytes: 2 })
  })

  it('stops when aborted', async () => {
    const root = await tree({ a: bytes(4 * MiB, 1), b: bytes(4 * MiB, 2) })
    const ac = new AbortController()
    await expect(createManifest(root, { signal: ac.signal, onProgress: p => { if (p.bytes > 0) ac.abort() } })).rejects.toThrow(/abort/i)
    const before = new AbortController()
    before.abort()
    await expect(createManifest(root, { signal: before.signal })).rejects.toThrow(/abort/i)
  })

  it('refuses a file that changes size between the walk and its hashing', async () => {
    const root = await tree({ a: bytes(1000, 1), b: bytes(1000, 2) })
    const grow = createManifest(root, { onProgress: p => { if (p.bytes === 0) appendFileSync(join(root, 'b'), 'more') } })
    await expect(grow).rejects.toThrow(FileChangedError)
    await expect(createManifest(root, { onProgress: p => { if (p.bytes === 0) appendFileSync(join(root, 'b'), 'more') } })).rejects.toThrow(/b grew while reading/)
    await expect(createManifest(root, { onProgress: p => { if (p.bytes === 0) truncateSync(join(root, 'a'), 10) } })).rejects.toThrow(/a shrank while reading \(10 of 1000 bytes\)/)
  })

  it('fails before hashing when the manifest would be over the cap', async () => {
    // a 6 GiB sparse file in 16 KiB pieces: 393,216 hashes, 12 MiB of manifest; never read
    const root = await tree({})
    const fh = await open(join(root, 'sparse'), 'w')
    await fh.truncate(6 * 1024 * MiB)
    await fh.close()
    const started = Date.now()
    await expect(createManifest(root, { pieceLength: 16 * KiB })).rejects.toThrow(new RegExp(`more than ${MAX_MANIFEST_BYTES}; use a larger pieceLength`))
    expect(Date.now() - started).toBeLessThan(5000)
    // the file alone too (a single-file manifest)
    await expect(createManifest(join(root, 'sparse'), { pieceLength: 16 * KiB })).rejects.toThrow(/use a larger pieceLength/)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe('createManifest refuses, naming the path', () => {
  let server: Server | undefined
  afterAll(async () => { await new Promise<void>(resolve => server !== undefined ? server.close(() => resolve()) : resolve()) })

  it('a symbolic link to a file, to a folder, or to nothing', async () => {
    for (const target of ['/etc/passwd', '/etc', '/no/such/thing']) {
      const root = await tree({ 'ok.txt': 'ok' }, ['sub'])
      await symlink(target, join(root, 'sub', 'link'))
      const err = await createManifest(root).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UnsupportedEntryError)
      expect((err as UnsupportedEntryError).path).toBe(join(root, 'sub', 'link'))
      expect((err as Error).message).toBe(`cannot share ${join(root, 'sub', 'link')}: a symbolic link (links are not followed)`)
    }
  })

  it('a socket (a special file)', async () => {
    const root = await tree({ 'ok.txt': 'ok' })
    const sock = join(root, 'sock')
    server = createServer()
    await new Promise<void>(resolve => server?.listen(sock, resolve))
    await expect(createManifest(root)).rejects.toThrow(`cannot share ${sock}: a socket: only regular files and folders can be shared`)
  })

  it('names that are not valid in a manifest', async () => {
    const reserved = await tree({ 'a/.bitswarm-abc.part': 'x' })
    await expect(createManifest(reserved)).rejects.toThrow(UnsupportedEntryError)
    await expect(createManifest(reserved)).rejects.toThrow(/\.bitswarm-abc\.part: name must not start with "\.bitswarm-"/)
    if (process.platform !== 'win32') {
      const backslash = await tree({ 'a\\b': 'x' })
      await expect(createManifest(backslash)).rejects.toThrow(/single path component/)
    }
    await expect(createManifest(await tree({ a: 'a' }, [], '.bitswarm-folder'))).rejects.toThrow(InvalidManifestError)
  })

  it.runIf(process.platform === 'linux')('a name that is not UTF-8', async () => {
    const root = await tree({ 'ok.txt': 'ok' })
    await writeFile(Buffer.concat([Buffer.from(root + '/bad-'), Buffer.from([0xff, 0xfe])]), 'x')
    await expect(createManifest(root)).rejects.toThrow(/the name is not UTF-8 \(bytes 6261642dfffe\)/)
  })

  it('a folder deeper than MAX_DEPTH', async () => {
    const deep = new Array(MAX_DEPTH).fill('d').join('/')
    const ok = await tree({ [`${deep}/f`.slice(2)]: 'x' }) // 64 components with the file
    expect((await createManifest(ok)).manifest.version).toBe(2)
    const tooDeep = await tree({ [`${deep}/f`]: 'x' })
    await expect(createManifest(tooDeep)).rejects.toThrow(`more than ${MAX_DEPTH} folders deep`)
  })

  it('a missing path', async () => {
    const missing = join(dir, 'nope')
    await expect(createManifest(missing)).rejects.toThrow(`cannot read ${missing}: ENOENT`)
  })
})

describe('a folder manifest made from the fixture matches a second reading', () => {
  it('decodes what it encodes, with the same layout', async () => {
    const root = await tree({ 'x/1': bytes(50000, 9), 'x/2': '', y: bytes(17, 3) }, ['z'])
    const { manifest, bytes: encoded } = await createManifest(root)
    const file = join(dir, 'folder.manifest')
    await writeManifestFile(file, encoded)
    const back = (await readManifestFile(file)).manifest as FolderManifest
    expect(back).toEqual(manifest)
    expect(manifestLayout(back).files).toEqual(manifestLayout(manifest).files)
  })
})
