import { cp, mkdtemp, readFile, rm, writeFile, mkdir, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as dagCbor from '@ipld/dag-cbor'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  HASH_LENGTH, InvalidManifestError, ManifestMismatchError, MIN_PIECE_LENGTH, choosePieceLength,
  decodeManifest, encodeManifest, manifestCid, parseCid, pieceCount, pieceHash, pieceSize,
  verifyManifest, type Manifest
} from '../../src/manifest/manifest.js'
import { createManifest, readManifestFile, writeManifestFile } from '../../src/storage/manifest-file.js'

const fixtures = fileURLToPath(new URL('../../fixtures/', import.meta.url))
interface Golden {
  file: string, manifest: string, pieceLength: number, explicit: boolean, length: number, pieces: number, cid: string
  // folders (version 2): the files' paths in manifest order, and the empty folders git cannot keep
  version?: 2, files?: string[][], emptyFolders?: string[][]
}
const golden: Golden[] = JSON.parse(await readFile(join(fixtures, 'golden.json'), 'utf8'))

const KiB = 1024
const MiB = 1024 * KiB

function sampleManifest (over: Partial<Record<keyof Manifest, unknown>> = {}): Record<string, unknown> {
  return { version: 1, name: 'a.bin', length: 40000, pieceLength: 16384, pieces: new Uint8Array(3 * 32).fill(7), ...over }
}

describe('golden fixtures', () => {
  it('has the expected cases', () => {
    expect(golden.length).toBeGreaterThanOrEqual(5)
    const sample = golden.find(g => g.file === 'sample.bin' && !g.explicit)
    expect(sample).toMatchObject({ pieceLength: 16384, length: 100 * KiB, pieces: 7 })
    expect(golden.some(g => g.file === 'empty.bin' && g.length === 0 && g.pieces === 0)).toBe(true)
  })

  let copies: string
  beforeAll(async () => { copies = await mkdtemp(join(tmpdir(), 'bitswarm-golden-')) })
  afterAll(async () => { await rm(copies, { recursive: true, force: true }) })

  /** a fixture as createManifest should see it: a folder copied with its empty folders made */
  async function source (g: Golden): Promise<string> {
    if (g.version !== 2) return join(fixtures, g.file)
    const dir = await mkdtemp(join(copies, 'case-'))
    await cp(join(fixtures, g.file), join(dir, g.file), { recursive: true })
    for (const p of g.emptyFolders ?? []) await mkdir(join(dir, g.file, ...p), { recursive: true })
    return join(dir, g.file)
  }

  it('has folder cases', () => {
    const folders = golden.filter(g => g.version === 2)
    expect(folders.length).toBeGreaterThanOrEqual(2)
    for (const g of folders) expect(g.emptyFolders?.length).toBeGreaterThan(0)
  })

  for (const g of golden) {
    it(`createManifest reproduces ${g.manifest}`, async () => {
      const expected = new Uint8Array(await readFile(join(fixtures, g.manifest)))
      const { manifest, bytes, cid } = await createManifest(await source(g), g.explicit ? { pieceLength: g.pieceLength } : {})
      expect(manifest.version).toBe(g.version ?? 1)
      if (manifest.version === 2) {
        expect(manifest.files.map(f => f.path)).toEqual(g.files)
        expect(manifest.folders).toEqual(g.emptyFolders)
      }
      expect(manifest.pieceLength).toBe(g.pieceLength)
      expect(manifest.length).toBe(g.length)
      expect(pieceCount(manifest)).toBe(g.pieces)
      expect(manifest.name).toBe(g.file)
      expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true)
      expect(cid.toString()).toBe(g.cid)
      expect(encodeManifest(decodeManifest(expected))).toEqual(expected)
      expect((await verifyManifest(expected, parseCid(g.cid))).length).toBe(g.length)
    })
  }

  it('readManifestFile loads a golden manifest', async () => {
    const g = golden.find(x => x.file === 'sample.bin' && !x.explicit)!
    const { manifest, cid } = await readManifestFile(join(fixtures, g.manifest))
    expect(cid.toString()).toBe(g.cid)
    expect(pieceSize(manifest, 6)).toBe(100 * KiB - 6 * 16 * KiB)
    expect(pieceSize(manifest, 0)).toBe(16 * KiB)
  })
})

describe('helpers', () => {
  it('choosePieceLength', () => {
    expect(choosePieceLength(0)).toBe(16 * KiB)
    expect(choosePieceLength(1)).toBe(16 * KiB)
    expect(choosePieceLength(16 * KiB)).toBe(16 * KiB)
    expect(choosePieceLength(2000 * 16 * KiB)).toBe(16 * KiB)
    expect(choosePieceLength(2000 * 16 * KiB + 1)).toBe(32 * KiB)
    expect(choosePieceLength(64 * MiB)).toBe(64 * KiB)
    expect(Math.ceil(64 * MiB / choosePieceLength(64 * MiB))).toBe(1024)
    expect(choosePieceLength(256 * MiB)).toBe(256 * KiB)
    expect(choosePieceLength(1024 * 1024 * MiB)).toBe(16 * MiB) // 1 TiB: capped
    expect(() => choosePieceLength(-1)).toThrow(RangeError)
    expect(() => choosePieceLength(1.5)).toThrow(RangeError)
  })

  it('pieceCount / pieceSize / pieceHash', () => {
    const m = sampleManifest() as unknown as Manifest
    m.pieces = new Uint8Array(96).map((_, i) => i)
    expect(pieceCount(m)).toBe(3)
    expect(pieceSize(m, 0)).toBe(16384)
    expect(pieceSize(m, 2)).toBe(40000 - 32768)
    expect([...pieceHash(m, 1)]).toEqual([...Array(32).keys()].map(i => i + 32))
    expect(() => pieceSize(m, 3)).toThrow(RangeError)
    expect(() => pieceHash(m, -1)).toThrow(RangeError)
    expect(MIN_PIECE_LENGTH).toBe(16384)
    expect(HASH_LENGTH).toBe(32)
  })

  it('round trips encode/decode', async () => {
    const m = sampleManifest({ name: 'héllo wörld 🐝.bin' }) as unknown as Manifest
    const bytes = encodeManifest(m)
    expect(decodeManifest(bytes)).toEqual(m)
    const cid = await manifestCid(bytes)
    expect(cid.version).toBe(1)
    expect(cid.code).toBe(dagCbor.code)
    expect(parseCid(cid.toString()).toString()).toBe(cid.toString())
    // an empty file is a valid manifest with no pieces
    const empty = sampleManifest({ length: 0, pieces: new Uint8Array(0) }) as unknown as Manifest
    expect(decodeManifest(encodeManifest(empty))).toEqual(empty)
  })

  it('parseCid rejects garbage and non-manifest CIDs', () => {
    expect(() => parseCid('hello')).toThrow(InvalidManifestError)
    expect(() => parseCid('')).toThrow(/not a CID/)
    // a valid CIDv0 (dag-pb) cannot name a manifest
    expect(() => parseCid('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG')).toThrow(InvalidManifestError)
  })

  it('verifyManifest rejects the bytes of another manifest', async () => {
    const a = encodeManifest(sampleManifest() as unknown as Manifest)
    const b = encodeManifest(sampleManifest({ name: 'b.bin' }) as unknown as Manifest)
    await expect(verifyManifest(b, await manifestCid(a))).rejects.toThrow(ManifestMismatchError)
    await expect(verifyManifest(a, await manifestCid(a))).resolves.toMatchObject({ name: 'a.bin' })
  })

  it('encodeManifest refuses an invalid manifest', () => {
    expect(() => encodeManifest(sampleManifest({ name: '../x' }) as unknown as Manifest)).toThrow(InvalidManifestError)
  })
})

describe('decodeManifest rejects', () => {
  const raw = (v: unknown): Uint8Array => dagCbor.encode(v)
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['not CBOR', new Uint8Array([0xff, 0x00, 0x13]), /not DAG-CBOR/],
    ['empty bytes', new Uint8Array(0), /not DAG-CBOR/],
    ['an array', raw([1, 2]), /not a map/],
    ['a string', raw('manifest'), /not a map/],
    ['unknown version', raw(sampleManifest({ version: 3 })), /unsupported manifest version 3/],
    ['version 2 with the fields of version 1', raw(sampleManifest({ version: 2 })), /unknown field "length"/],
    ['missing version', raw({ name: 'a', length: 0, pieceLength: 16384, pieces: new Uint8Array(0) }), /version/],
    ['unknown field', raw({ ...sampleManifest(), files: [] }), /unknown field/],
    ['missing pieces', raw({ version: 1, name: 'a', length: 0, pieceLength: 16384 }), /missing field "pieces"/],
    ['name as bytes', raw(sampleManifest({ name: new Uint8Array([97]) })), /name must be a string/],
    ['name ..', raw(sampleManifest({ name: '..' })), /name/],
    ['name .', raw(sampleManifest({ name: '.' })), /name/],
    ['name a/b', raw(sampleManifest({ name: 'a/b' })), /single path component/],
    ['name a\\b', raw(sampleManifest({ name: 'a\\b' })), /single path component/],
    ['name with NUL', raw(sampleManifest({ name: 'a\0b' })), /single path component/],
    ['empty name', raw(sampleManifest({ name: '' })), /name must be 1\.\.255/],
    ['name of 256 bytes', raw(sampleManifest({ name: 'x'.repeat(256) })), /name must be 1\.\.255/],
    ['length as string', raw(sampleManifest({ length: '40000' })), /length/],
    ['negative length', raw(sampleManifest({ length: -1 })), /length/],
    ['fractional length', raw(sampleManifest({ length: 1.5 })), /length/],
    ['length beyond 2^53', raw(sampleManifest({ length: 2n ** 60n })), /length/],
    ['pieces as string', raw(sampleManifest({ pieces: 'abc' })), /pieces must be bytes/],
    ['too few piece hashes', raw(sampleManifest({ pieces: new Uint8Array(64) })), /pieces has 64 bytes, expected 96/],
    ['a truncated hash', raw(sampleManifest({ pieces: new Uint8Array(95) })), /pieces has 95 bytes/],
    ['non-power-of-two pieceLength', raw(sampleManifest({ pieceLength: 20000, length: 40000, pieces: new Uint8Array(64) })), /pieceLength/],
    ['pieceLength below 16 KiB', raw(sampleManifest({ pieceLength: 8192, length: 8192, pieces: new Uint8Array(32) })), /pieceLength/],
    ['pieceLength above 64 MiB', raw(sampleManifest({ pieceLength: 128 * MiB, length: 1, pieces: new Uint8Array(32) })), /pieceLength/]
  ]
  for (const [what, bytes, message] of cases) {
    it(what, () => {
      expect(() => decodeManifest(bytes)).toThrow(InvalidManifestError)
      expect(() => decodeManifest(bytes)).toThrow(message)
    })
  }

  it('non-canonical encodings', () => {
    const good = encodeManifest(sampleManifest() as unknown as Manifest)
    // version 1 written with a one-byte argument (0x18 0x01) instead of inline: same value, other bytes
    const i = Buffer.from(good).indexOf(Buffer.from('version'))
    expect(good[i + 7]).toBe(0x01)
    const longInt = new Uint8Array([...good.subarray(0, i + 7), 0x18, 0x01, ...good.subarray(i + 8)])
    expect(() => decodeManifest(longInt)).toThrow(InvalidManifestError)
    // trailing garbage after the map
    expect(() => decodeManifest(new Uint8Array([...good, 0x00]))).toThrow(InvalidManifestError)
    // map keys out of canonical order: hand-built CBOR with "version" first
    const cborText = (s: string): number[] => [0x60 + s.length, ...Buffer.from(s)]
    const reordered = new Uint8Array([0xa5, ...cborText('version'), 0x01, ...cborText('name'), ...cborText('a'),
      ...cborText('length'), 0x00, ...cborText('pieces'), 0x40, ...cborText('pieceLength'), 0x19, 0x40, 0x00])
    expect(() => decodeManifest(reordered)).toThrow(InvalidManifestError)
    expect(() => decodeManifest(reordered)).toThrow(/not canonically encoded/)
    // the same fields in canonical order decode fine (sanity check of the hand-built bytes)
    const canonical = new Uint8Array([0xa5, ...cborText('name'), ...cborText('a'), ...cborText('length'), 0x00,
      ...cborText('pieces'), 0x40, ...cborText('version'), 0x01, ...cborText('pieceLength'), 0x19, 0x40, 0x00])
    expect(decodeManifest(canonical)).toMatchObject({ name: 'a', length: 0, pieceLength: 16384 })
  })

  it('oversized input before decoding', () => {
    expect(() => decodeManifest(new Uint8Array(8 * MiB + 1))).toThrow(/more than/)
  })
})

describe('files', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'bitswarm-manifest-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('createManifest rejects a missing file', async () => {
    const missing = join(dir, 'nope.bin')
    await expect(createManifest(missing)).rejects.toThrow(`cannot read ${missing}: ENOENT`)
  })

  it('createManifest makes a folder manifest of a directory', async () => {
    await mkdir(join(dir, 'sub'))
    await writeFile(join(dir, 'sub', 'f.txt'), 'f')
    const { manifest } = await createManifest(join(dir, 'sub'))
    expect(manifest).toMatchObject({ version: 2, name: 'sub', length: 1, files: [{ path: ['f.txt'], length: 1 }], folders: [] })
  })

  it('createManifest rejects a bad piece length and a bad name', async () => {
    const f = join(fixtures, 'hello.txt')
    await expect(createManifest(f, { pieceLength: 20000 })).rejects.toThrow(InvalidManifestError)
    await expect(createManifest(f, { pieceLength: 8192 })).rejects.toThrow(InvalidManifestError)
    await expect(createManifest(f, { name: 'a/b' })).rejects.toThrow(InvalidManifestError)
  })

  it('createManifest honours name and abort signal', async () => {
    const { manifest } = await createManifest(join(fixtures, 'hello.txt'), { name: 'greeting.txt' })
    expect(manifest.name).toBe('greeting.txt')
    const ac = new AbortController()
    ac.abort()
    await expect(createManifest(join(fixtures, 'sample.bin'), { signal: ac.signal })).rejects.toThrow()
  })

  it('hashes pieces correctly across read-chunk boundaries', async () => {
    // 2.5 MiB + 3 bytes with 16 KiB pieces: 1 MiB read chunks end mid-stream; compare with a one-shot hash
    const data = new Uint8Array(5 * 512 * KiB + 3).map((_, i) => (i * 31 + (i >> 9)) & 0xff)
    const f = join(dir, 'big.bin')
    await writeFile(f, data)
    const { createHash } = await import('node:crypto')
    for (const pl of [16 * KiB, 2 * MiB]) {
      const { manifest } = await createManifest(f, { pieceLength: pl })
      expect(pieceCount(manifest)).toBe(Math.ceil(data.length / pl))
      for (const p of [0, pieceCount(manifest) - 1]) {
        const want = createHash('sha256').update(data.subarray(p * pl, (p + 1) * pl)).digest()
        expect(Buffer.from(pieceHash(manifest, p)).equals(want)).toBe(true)
      }
    }
  })

  it('writeManifestFile is atomic and readManifestFile round trips', async () => {
    const { bytes, cid } = await createManifest(join(fixtures, 'hello.txt'))
    const out = join(dir, 'hello.manifest')
    await writeManifestFile(out, bytes)
    await writeManifestFile(out, bytes) // overwrite works
    expect((await readdir(dir)).filter(n => n.includes('.tmp'))).toEqual([])
    const back = await readManifestFile(out)
    expect(back.cid.toString()).toBe(cid.toString())
    await expect(readManifestFile(join(dir, 'missing.manifest'))).rejects.toThrow(/cannot read .*ENOENT/)
    await writeFile(join(dir, 'junk.manifest'), 'not a manifest')
    await expect(readManifestFile(join(dir, 'junk.manifest'))).rejects.toThrow(InvalidManifestError)
    await expect(writeManifestFile(join(dir, 'no', 'such', 'dir.manifest'), bytes)).rejects.toThrow(/cannot write .*ENOENT/)
  })
})
