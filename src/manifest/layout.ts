// Where each piece of a manifest lies: which file, and how big it is.
//
// A single-file manifest (version 1) is one file cut into pieces of `pieceLength`, the last one
// shorter. A folder manifest (version 2) is a list of files, each cut the same way and each
// starting on a piece boundary, as in BitTorrent v2 (BEP 52): every piece belongs to exactly one
// file, so a file verifies on its own, a selection of files never needs a neighbour's bytes, and
// identical files are identical pieces. An empty file has no pieces. Pure: no I/O.

/** One file of a manifest and the pieces it spans. */
export interface FileSpan {
  /** its place in the manifest's list of files (0 for a single-file manifest) */
  index: number
  /** path inside the folder, as components (a single-file manifest: [name]) */
  path: string[]
  /** bytes */
  length: number
  /** its first piece (for an empty file: where its first piece would be) */
  firstPiece: number
  /** ceil(length / pieceLength): 0 for an empty file */
  pieceCount: number
}

/** The piece geometry of a manifest. */
export interface Layout {
  readonly pieceLength: number
  /** the sum of the files' lengths */
  readonly length: number
  readonly pieceCount: number
  readonly files: readonly FileSpan[]
  /** bytes of `piece` (pieceLength, or less for the last piece of a file); RangeError outside */
  pieceSize: (piece: number) => number
  /** the file `piece` belongs to; RangeError outside */
  fileOf: (piece: number) => FileSpan
  /** where `piece` starts inside its file */
  offsetInFile: (piece: number) => number
}

/**
 * The layout of `files` (in manifest order) cut into pieces of `pieceLength`, each file starting
 * on a piece boundary.
 */
export function layoutOf (pieceLength: number, files: ReadonlyArray<{ readonly path: readonly string[], readonly length: number }>): Layout {
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) throw new RangeError(`invalid pieceLength ${pieceLength}`)
  const spans: FileSpan[] = []
  let piece = 0
  let length = 0
  for (const [index, f] of files.entries()) {
    if (!Number.isSafeInteger(f.length) || f.length < 0) throw new RangeError(`invalid length ${f.length} of file ${index}`)
    const count = Math.ceil(f.length / pieceLength)
    spans.push({ index, path: [...f.path], length: f.length, firstPiece: piece, pieceCount: count })
    piece += count
    length += f.length
  }
  const pieceCount = piece
  // piece -> file: the files that have pieces, by first piece, searched by bisection
  const withPieces = spans.filter(s => s.pieceCount > 0)
  const fileOf = (p: number): FileSpan => {
    if (!Number.isInteger(p) || p < 0 || p >= pieceCount) throw new RangeError(`piece ${p} out of range [0, ${pieceCount})`)
    let lo = 0
    let hi = withPieces.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (withPieces[mid].firstPiece <= p) lo = mid
      else hi = mid - 1
    }
    return withPieces[lo]
  }
  const offsetInFile = (p: number): number => (p - fileOf(p).firstPiece) * pieceLength
  // piece -> size, listed once (4 bytes a piece): the swarm asks on every block, request and
  // stats line, and a bisection each time was a few percent of a folder downloader's CPU
  const sizes = new Uint32Array(pieceCount)
  for (const f of withPieces) {
    sizes.fill(pieceLength, f.firstPiece, f.firstPiece + f.pieceCount - 1)
    sizes[f.firstPiece + f.pieceCount - 1] = f.length - pieceLength * (f.pieceCount - 1)
  }
  return {
    pieceLength,
    length,
    pieceCount,
    files: spans,
    fileOf,
    offsetInFile,
    pieceSize: (p: number): number => {
      const size = sizes[p]
      // undefined for an index out of range, negative or fractional
      if (size === undefined) throw new RangeError(`piece ${p} out of range [0, ${pieceCount})`)
      return size
    }
  }
}
