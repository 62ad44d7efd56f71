// Folder manifests (version 2): the format, every validation rule against hostile input, the
// layout of pieces over files, and the byte-wise order of paths.
import * as dagCbor from '@ipld/dag-cbor'
import { describe, expect, it } from 'vitest'
import {
  decodeManifest, encodeManifest, folderManifest, HASH_LENGTH, InvalidManifestError, manifestLayout, MAX_DEPTH,
  MAX_FILES, MAX_MANIFEST_BYTES, MAX_PATH_BYTES, pieceCount, pieceHash, pieceSize, type FolderManifest, type Manifest
} from '../../src/manifest/manifest.js'
import { layoutOf } from '../../src/manifest/layout.js'
import { compareComponents, comparePaths, nameProblem, reservedName } from '../../src/manifest/names.js'

const KiB = 1024

/** a valid folder manifest as a plain record: 'a/b.txt' has 2 pieces, 'c.txt' none, 'd.txt' 1 */
function folderRaw (over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 2,
    name: 'top',
    pieceLength: 16 * KiB,
    files: [{ path: ['a', 'b.txt'], length: 20000 }, { path: ['c.txt'], length: 0 }, { path: ['d.txt'], length: 5 }],
    folders: [['e']],
    pieces: new Uint8Array(3 * HASH_LENGTH).map((_, i) => i),
    ...over
  }
}

const raw = (v: unknown): Uint8Array => dagCbor.encode(v)
const files = (...paths: string[][]): Array<{ path: string[], length: number }> => paths.map(path => ({ path, length: 0 }))
const noPieces = new Uint8Array(0)

describe('folder manifests', () => {
  it('decodes a valid one, with length derived and not encoded', () => {
    const m = decodeManifest(raw(folderRaw()))
    expect(m).toMatchObject({ version: 2, name: 'top', length: 20005, pieceLength: 16384, folders: [['e']] })
    if (m.version !== 2) throw new Error('not a folder manifest')
    expect(m.files.map(f => f.path)).toEqual([['a', 'b.txt'], ['c.txt'], ['d.txt']])
    expect(Object.keys(dagCbor.decode(encodeManifest(m)) as object).sort()).toEqual(['files', 'folders', 'name', 'pieceLength', 'pieces', 'version'])
    // frozen: the cached layout cannot go stale under it
    expect(Object.isFrozen(m.files)).toBe(true)
    expect(Object.isFrozen(m.files[0].path)).toBe(true)
  })

  it('round trips encode/decode', () => {
    const m = folderManifest({ name: 'photos 📷', pieceLength: 16384, files: [{ path: ['ä', 'ß.jpg'], length: 3 }], folders: [['empty']], pieces: new Uint8Array(32).fill(9) })
    expect(m.length).toBe(3)
    expect(decodeManifest(encodeManifest(m))).toEqual(m)
    // an empty folder: no files, no pieces
    const empty = folderManifest({ name: 'nothing', pieceLength: 16384, files: [], folders: [], pieces: noPieces })
    expect(decodeManifest(encodeManifest(empty))).toEqual(empty)
    expect(pieceCount(empty)).toBe(0)
  })

  it('matches a hand-encoded manifest (an independent encoder)', () => {
    // {version: 2, name: "t", pieceLength: 16384, files: [{path: ["f"], length: 1}], folders: [["e"]], pieces: h(32)}
    // map keys in DAG-CBOR order: length first, then bytewise
    const t = (s: string): number[] => [0x60 + s.length, ...Buffer.from(s)]
    const h = new Array(32).fill(0xab)
    const bytes = new Uint8Array([
      0xa6,
      ...t('name'), ...t('t'),
      ...t('files'), 0x81, 0xa2, ...t('path'), 0x81, ...t('f'), ...t('length'), 0x01,
      ...t('pieces'), 0x58, 0x20, ...h,
      ...t('folders'), 0x81, 0x81, ...t('e'),
      ...t('version'), 0x02,
      ...t('pieceLength'), 0x19, 0x40, 0x00
    ])
    const m = folderManifest({ name: 't', pieceLength: 16384, files: [{ path: ['f'], length: 1 }], folders: [['e']], pieces: new Uint8Array(h) })
    expect(Buffer.from(encodeManifest(m)).equals(Buffer.from(bytes))).toBe(true)
    expect(decodeManifest(bytes)).toEqual(m)
    // the same map with a file entry's keys out of order ("length" before "path"): refused
    const reordered = new Uint8Array([
      0xa6,
      ...t('name'), ...t('t'),
      ...t('files'), 0x81, 0xa2, ...t('length'), 0x01, ...t('path'), 0x81, ...t('f'),
      ...t('pieces'), 0x58, 0x20, ...h,
      ...t('folders'), 0x81, 0x81, ...t('e'),
      ...t('version'), 0x02,
      ...t('pieceLength'), 0x19, 0x40, 0x00
    ])
    expect(() => decodeManifest(reordered)).toThrow(/not canonically encoded/)
    // a length written in two bytes (0x18 0x01) instead of one
    const i = Buffer.from(bytes).indexOf('length') + 6
    expect(bytes[i]).toBe(0x01)
    const long = new Uint8Array([...bytes.subarray(0, i), 0x18, 0x01, ...bytes.subarray(i + 1)])
    expect(() => decodeManifest(long)).toThrow(InvalidManifestError)
  })

  it('encodeManifest refuses a length that is not the sum of the files', () => {
    const m = folderManifest({ name: 't', pieceLength: 16384, files: [{ path: ['f'], length: 1 }], folders: [], pieces: new Uint8Array(32) })
    expect(() => encodeManifest({ ...m, length: 2 })).toThrow(/length is 2 but the files add up to 1/)
  })

  it('encodeManifest refuses what decode would refuse, and leaks no extra fields', () => {
    const m = decodeManifest(raw(folderRaw())) as FolderManifest
    expect(() => encodeManifest({ ...m, files: [...m.files].reverse() })).toThrow(/not sorted/)
    expect(() => encodeManifest({ ...m, files: [{ path: ['x', '\ud800'], length: 0 }], pieces: noPieces, length: 0 })).toThrow(/well-formed/)
    const extra = { ...m, files: m.files.map(f => ({ ...f, secret: 1 })), secret: 2 }
    expect(encodeManifest(extra)).toEqual(encodeManifest(m))
  })

  it('the manifest size cap holds on the way out', () => {
    // 300,000 pieces of hashes: 9.6 MB, over the 8 MiB cap
    const count = 300_000
    const m = folderManifest({ name: 'huge', pieceLength: 16384, files: [{ path: ['big'], length: count * 16384 }], folders: [], pieces: new Uint8Array(count * 32) })
    expect(() => encodeManifest(m)).toThrow(new RegExp(`more than ${MAX_MANIFEST_BYTES}`))
  })
})

describe('decodeManifest rejects hostile folder manifests', () => {
  const name255 = 'x'.repeat(255)
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    // shape
    ['a missing field', (({ folders: _, ...rest }) => rest)(folderRaw()), /missing field "folders"/],
    ['an unknown field', folderRaw({ length: 20005 }), /unknown field "length"/],
    ['files not a list', folderRaw({ files: { path: ['a'], length: 0 } }), /files must be a list/],
    ['folders not a list', folderRaw({ folders: 'e' }), /folders must be a list/],
    ['a file that is not a map', folderRaw({ files: [['a']], pieces: noPieces }), /files\[0\] must be a map/],
    ['a file with an unknown field', folderRaw({ files: [{ path: ['a'], length: 0, mode: 0o777 }], pieces: noPieces }), /files\[0\]: unknown field "mode"/],
    ['a file without a length', folderRaw({ files: [{ path: ['a'] }], pieces: noPieces }), /files\[0\]: missing field "length"/],
    ['a file without a path', folderRaw({ files: [{ length: 0 }], pieces: noPieces }), /files\[0\]: missing field "path"/],
    ['a path as one string', folderRaw({ files: [{ path: 'a/b', length: 0 }], pieces: noPieces }), /files\[0\]\.path must be a list of names/],
    ['a folder as one string', folderRaw({ folders: ['e'] }), /folders\[0\] must be a list of names/],
    // the rules of a name, in every component
    ['an empty path', folderRaw({ files: [{ path: [], length: 0 }], pieces: noPieces }), /files\[0\]\.path is empty/],
    ['an empty folder path', folderRaw({ folders: [[]] }), /folders\[0\] is empty/],
    ['an absolute path', folderRaw({ files: files(['', 'etc', 'passwd']), pieces: noPieces }), /files\[0\]\.path\[0\]: name must be 1\.\.255 bytes/],
    ['an absolute path in one component', folderRaw({ files: files(['/etc/passwd']), pieces: noPieces }), /files\[0\]\.path\[0\]: name must be a single path component/],
    ['a ".." component', folderRaw({ files: files(['a', '..', 'b']), pieces: noPieces }), /files\[0\]\.path\[1\]: name must not be "\.\."/],
    ['a "." component', folderRaw({ files: files(['.', 'b']), pieces: noPieces }), /files\[0\]\.path\[0\]: name must not be "\."/],
    ['a ".." folder', folderRaw({ folders: [['..']] }), /folders\[0\]\[0\]: name must not be "\.\."/],
    ['a component with /', folderRaw({ files: files(['a/b']), pieces: noPieces }), /single path component/],
    ['a component with \\', folderRaw({ files: files(['..\\b']), pieces: noPieces }), /single path component/],
    ['a component with NUL', folderRaw({ files: files(['a\0b']), pieces: noPieces }), /single path component/],
    ['a component of 256 bytes', folderRaw({ files: files([name255 + 'x']), pieces: noPieces }), /name must be 1\.\.255 bytes of UTF-8, got 256/],
    ['a component as bytes', folderRaw({ files: [{ path: [new Uint8Array([97])], length: 0 }], pieces: noPieces }), /files\[0\]\.path\[0\]: name must be a string/],
    ['a component as a number', folderRaw({ folders: [[7]] }), /folders\[0\]\[0\]: name must be a string/],
    ['a reserved component', folderRaw({ files: files(['a', '.bitswarm-x.part']), pieces: noPieces }), /files\[0\]\.path\[1\]: name must not start with "\.bitswarm-"/],
    ['a reserved component in capitals', folderRaw({ folders: [['.BitSwarm-resume']] }), /reserved/],
    ['a reserved name', folderRaw({ name: '.bitswarm-abc.part' }), /^invalid manifest: name must not start with/],
    ['a name with /', folderRaw({ name: 'a/b' }), /single path component/],
    // lengths
    ['a negative length', folderRaw({ files: [{ path: ['a'], length: -1 }], pieces: noPieces }), /files\[0\]\.length must be a safe integer >= 0/],
    ['a fractional length', folderRaw({ files: [{ path: ['a'], length: 0.5 }], pieces: noPieces }), /files\[0\]\.length must be a safe integer/],
    ['a length beyond 2^53', folderRaw({ files: [{ path: ['a'], length: 2n ** 60n }], pieces: noPieces }), /files\[0\]\.length must be a safe integer/],
    ['files adding up beyond 2^53', folderRaw({ files: [{ path: ['a'], length: 2 ** 52 }, { path: ['b'], length: 2 ** 52 }], pieces: noPieces }), /more than 2\^53 - 1 bytes/],
    // canonical order, no duplicates
    ['unsorted files', folderRaw({ files: files(['b'], ['a']), pieces: noPieces }), /files are not sorted: "a" comes after "b"/],
    ['files in UTF-16 order, not byte order', folderRaw({ files: files(['🐝'], ['～']), pieces: noPieces }), /files are not sorted: "～" comes after "🐝"/],
    ['files in joined-path order, not component order', folderRaw({ files: files(['a-b'], ['a', 'x']), pieces: noPieces }), /files are not sorted: "a\/x" comes after "a-b"/],
    ['a duplicate file', folderRaw({ files: files(['a', 'b'], ['a', 'b']), pieces: noPieces }), /duplicate file "a\/b"/],
    ['unsorted folders', folderRaw({ folders: [['f'], ['e']] }), /folders are not sorted: "e" comes after "f"/],
    ['a duplicate folder', folderRaw({ folders: [['e'], ['e']] }), /duplicate folder "e"/],
    // a path is a file or a folder, never both
    ['a path both a file and a folder', folderRaw({ files: files(['e']), pieces: noPieces }), /"e" is both a file and a folder/],
    ['a file on the way to another file', folderRaw({ files: files(['a'], ['a', 'b']), pieces: noPieces }), /file "a" is also a folder on the way to "a\/b"/],
    ['a file on the way to a folder', folderRaw({ files: files(['a']), folders: [['a', 'b']], pieces: noPieces }), /file "a" is also a folder on the way to "a\/b"/],
    ['a listed folder holding a file', folderRaw({ folders: [['a']] }), /folder "a" is listed as empty but holds "a\/b\.txt"/],
    ['a listed folder holding a folder', folderRaw({ folders: [['e'], ['e', 'f']] }), /folder "e" is listed as empty but holds "e\/f"/],
    // bounds
    ['too deep a path', folderRaw({ files: files(new Array(MAX_DEPTH + 1).fill('d')), pieces: noPieces }), new RegExp(`files\\[0\\]\\.path has ${MAX_DEPTH + 1} components, more than ${MAX_DEPTH}`)],
    ['too deep a folder', folderRaw({ folders: [new Array(MAX_DEPTH + 1).fill('d')] }), /folders\[0\] has 65 components/],
    // pieces
    ['pieces as a string', folderRaw({ pieces: 'abc' }), /pieces must be bytes/],
    ['too few piece hashes', folderRaw({ pieces: new Uint8Array(64) }), /pieces has 64 bytes, expected 96/],
    ['pieces of one file for all (no piece boundary per file)', folderRaw({ pieces: new Uint8Array(2 * 32) }), /expected 96/],
    ['a truncated hash', folderRaw({ pieces: new Uint8Array(95) }), /pieces has 95 bytes/],
    ['a bad pieceLength', folderRaw({ pieceLength: 20000 }), /pieceLength/]
  ]
  for (const [what, value, message] of cases) {
    it(what, () => {
      const bytes = raw(value)
      expect(() => decodeManifest(bytes)).toThrow(InvalidManifestError)
      expect(() => decodeManifest(bytes)).toThrow(message)
    })
  }

  it('the depth bound itself is allowed', () => {
    const deep = new Array(MAX_DEPTH).fill('d')
    expect(decodeManifest(raw(folderRaw({ files: files(deep), folders: [], pieces: noPieces })))).toMatchObject({ version: 2 })
  })

  it('too many files and folders, counted before anything else', () => {
    // the entries are not even valid: the count alone refuses them
    const bytes = raw(folderRaw({ files: [], folders: new Array(MAX_FILES + 1).fill(0), pieces: noPieces }))
    expect(() => decodeManifest(bytes)).toThrow(`0 files and ${MAX_FILES + 1} folders, more than ${MAX_FILES} in all`)
  })

  it('too many path bytes', () => {
    // 17,000 files named by 255 bytes each: 4.3 MB of paths, under the 8 MiB cap
    const many = Array.from({ length: 17_000 }, (_, i) => ({ path: [String(i).padStart(6, '0') + 'x'.repeat(249)], length: 0 }))
    const bytes = raw(folderRaw({ files: many, folders: [], pieces: noPieces }))
    expect(bytes.length).toBeLessThan(MAX_MANIFEST_BYTES)
    expect(() => decodeManifest(bytes)).toThrow(`paths take more than ${MAX_PATH_BYTES} bytes`)
  })

  it('a manifest over the byte cap, before decoding', () => {
    expect(() => decodeManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1))).toThrow(/more than/)
  })

  it('a reserved name in a single-file manifest too', () => {
    const v1 = { version: 1, name: '.bitswarm-x.part', length: 0, pieceLength: 16384, pieces: noPieces }
    expect(() => decodeManifest(raw(v1))).toThrow(/reserved/)
  })
})

describe('layout', () => {
  const m = decodeManifest(raw(folderRaw())) as FolderManifest

  it('pieces never straddle files: each file tail is a short piece, empty files have none', () => {
    expect(pieceCount(m)).toBe(3)
    expect(pieceSize(m, 0)).toBe(16384)
    expect(pieceSize(m, 1)).toBe(20000 - 16384) // the tail of a/b.txt
    expect(pieceSize(m, 2)).toBe(5) // d.txt; c.txt (empty) has no piece
    expect(() => pieceSize(m, 3)).toThrow(RangeError)
    expect(() => pieceSize(m, -1)).toThrow(RangeError)
    expect([...pieceHash(m, 2)]).toEqual([...Array(32).keys()].map(i => i + 64))
    expect(() => pieceHash(m, 3)).toThrow(RangeError)
  })

  it('fileOf and offsetInFile', () => {
    const layout = manifestLayout(m)
    expect(layout.length).toBe(20005)
    expect(layout.files.map(f => [f.path, f.firstPiece, f.pieceCount])).toEqual([[['a', 'b.txt'], 0, 2], [['c.txt'], 2, 0], [['d.txt'], 2, 1]])
    expect(layout.fileOf(0).path).toEqual(['a', 'b.txt'])
    expect(layout.fileOf(1).index).toBe(0)
    expect(layout.fileOf(2).path).toEqual(['d.txt'])
    expect(layout.offsetInFile(1)).toBe(16384)
    expect(layout.offsetInFile(2)).toBe(0)
    expect(() => layout.fileOf(3)).toThrow(RangeError)
    // computed once per manifest object
    expect(manifestLayout(m)).toBe(layout)
  })

  it('many empty files between files with pieces', () => {
    const layout = layoutOf(16384, [
      { path: ['a'], length: 0 }, { path: ['b'], length: 16384 * 2 }, { path: ['c'], length: 0 }, { path: ['d'], length: 0 },
      { path: ['e'], length: 1 }, { path: ['f'], length: 0 }
    ])
    expect(layout.pieceCount).toBe(3)
    expect([0, 1, 2].map(p => layout.fileOf(p).path[0])).toEqual(['b', 'b', 'e'])
    expect([0, 1, 2].map(p => layout.pieceSize(p))).toEqual([16384, 16384, 1])
  })

  it('a single-file manifest is one file at [name]', () => {
    const v1: Manifest = { version: 1, name: 'one.bin', length: 40000, pieceLength: 16384, pieces: new Uint8Array(96) }
    const layout = manifestLayout(v1)
    expect(layout.files).toEqual([{ index: 0, path: ['one.bin'], length: 40000, firstPiece: 0, pieceCount: 3 }])
    expect(layout.pieceSize(2)).toBe(40000 - 32768)
    expect(pieceSize(v1, 2)).toBe(40000 - 32768)
    // a reassigned field is seen: the cache is checked against the manifest's fields
    v1.length = 16384
    expect(manifestLayout(v1).pieceCount).toBe(1)
  })
})

describe('names and order', () => {
  it('reservedName and nameProblem', () => {
    expect(reservedName('.bitswarm-abc')).toBe(true)
    expect(reservedName('.BITSWARM-abc')).toBe(true)
    expect(reservedName('bitswarm-abc')).toBe(false)
    expect(nameProblem('.bitswarm')).toBeUndefined()
    expect(nameProblem('ok name.txt')).toBeUndefined()
  })

  it('compareComponents is the order of UTF-8 bytes', () => {
    const alphabet = ['a', 'B', 'z', '-', '.', 'é', 'ß', '\u00ff', '\u0800', '\ud7ff', '\ue000', '～', '\uffff', '🐝', '𝄞', '\u{10ffff}', '日']
    let seed = 12345
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
    const word = (): string => Array.from({ length: 1 + rand(4) }, () => alphabet[rand(alphabet.length)]).join('')
    for (let i = 0; i < 5000; i++) {
      const a = word()
      const b = word()
      expect(Math.sign(compareComponents(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))))
    }
  })

  it('comparePaths goes component by component, a folder before what it holds', () => {
    const sorted = [['a'], ['a', 'x'], ['a', 'x', 'y'], ['a-b'], ['b'], ['～'], ['🐝']]
    const shuffled = [...sorted].reverse()
    expect(shuffled.sort(comparePaths)).toEqual(sorted)
  })
})
