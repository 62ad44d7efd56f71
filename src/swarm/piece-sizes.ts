/**
 * Each piece's size, looked up in O(1). manifest.pieceSize() of a folder checks the index and
 * finds the piece's file by bisection of the layout on every call; the swarm asks for sizes on
 * every block, request and stats line, which for a folder of 10,000 small files was a few percent
 * of a downloader's CPU. A single file's sizes are arithmetic; a folder's are listed once (4 bytes
 * a piece).
 */
import { manifestLayout, pieceCount, type Manifest } from '../manifest/manifest.js'

/** `piece`'s size in bytes; a RangeError outside [0, pieceCount), as manifest.pieceSize(). */
export type PieceSizes = (piece: number) => number

function outOfRange (piece: number, count: number): never {
  throw new RangeError(`piece ${piece} out of range [0, ${count})`)
}

export function pieceSizes (m: Manifest): PieceSizes {
  const count = pieceCount(m)
  const pieceLength = m.pieceLength
  if (m.version === 1) {
    const last = m.length - pieceLength * (count - 1)
    return (piece) => {
      if (!(piece >= 0 && piece < count) || !Number.isInteger(piece)) outOfRange(piece, count)
      return piece === count - 1 ? last : pieceLength
    }
  }
  const sizes = new Uint32Array(count)
  for (const f of manifestLayout(m).files) {
    if (f.pieceCount === 0) continue
    sizes.fill(pieceLength, f.firstPiece, f.firstPiece + f.pieceCount - 1)
    sizes[f.firstPiece + f.pieceCount - 1] = f.length - pieceLength * (f.pieceCount - 1)
  }
  return (piece) => {
    const size = sizes[piece]
    // undefined for an index out of range, negative or fractional
    if (size === undefined) outOfRange(piece, count)
    return size
  }
}
