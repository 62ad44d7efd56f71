import { describe, expect, it } from 'vitest'
import { folderManifest, manifestLayout, pieceCount, pieceSize, type Manifest } from '../../src/manifest/manifest.js'

const hashes = (n: number): Uint8Array => new Uint8Array(32 * n)

function check (m: Manifest): void {
  const size = manifestLayout(m).pieceSize
  const n = pieceCount(m)
  for (let i = 0; i < n; i++) expect(size(i)).toBe(pieceSize(m, i))
  for (const bad of [-1, n, n + 7, 0.5, Number.NaN]) expect(() => size(bad)).toThrow(RangeError)
}

describe('the layout\'s pieceSize (a table)', () => {
  it('a single file: every piece full but a short last one', () => {
    check({ version: 1, name: 'f', length: 5 * 1000 + 17, pieceLength: 1000, pieces: hashes(6) })
    check({ version: 1, name: 'f', length: 3000, pieceLength: 1000, pieces: hashes(3) })
  })

  it('a folder: each file starts a piece, so the last piece of each may be short; empty files have none', () => {
    const files = [
      { path: ['a'], length: 2500 },
      { path: ['b'], length: 0 },
      { path: ['c'], length: 1000 },
      { path: ['d'], length: 1 },
      { path: ['e'], length: 3999 }
    ]
    check(folderManifest({ name: 'x', pieceLength: 1000, files, folders: [], pieces: hashes(3 + 1 + 1 + 4) }))
  })
})
