// The rules for names inside a manifest: the manifest's name and every component of a path in a
// folder manifest. Names arrive from untrusted peers and become file names on the downloader's
// disk, so each is one harmless path component. Pure: no I/O.

/** The longest name or path component, in bytes of UTF-8 (NAME_MAX on Linux and macOS). */
export const MAX_NAME_BYTES = 255

/**
 * bitswarm's temporary files (part files, resume records, their temps) start with this; a
 * manifest may not name a file or folder so, or a download could collide with, or be mistaken
 * for, one of them. The storage layer builds its temporary names from it.
 */
export const TEMP_PREFIX = '.bitswarm-'

/** Is `name` in the namespace of our temporary files? Case-insensitive: some filesystems are. */
export function reservedName (name: string): boolean {
  return name.toLowerCase().startsWith(TEMP_PREFIX)
}

/** Why `name` cannot be a manifest's name or a path component, or undefined when it can. */
export function nameProblem (name: unknown): string | undefined {
  if (typeof name !== 'string') return 'name must be a string'
  const size = Buffer.byteLength(name, 'utf8')
  if (size < 1 || size > MAX_NAME_BYTES) return `name must be 1..${MAX_NAME_BYTES} bytes of UTF-8, got ${size}`
  // lone surrogates would not survive a UTF-8 round trip: the manifest would change identity
  if (!name.isWellFormed()) return 'name is not well-formed Unicode'
  if (name === '.' || name === '..') return `name must not be ${JSON.stringify(name)}`
  // the name becomes a file name on the downloader's disk: one component only (no traversal)
  if (/[/\\\0]/.test(name)) return `name must be a single path component without '/', '\\' or NUL: ${JSON.stringify(name)}`
  if (reservedName(name)) return `name must not start with ${JSON.stringify(TEMP_PREFIX)} (reserved for bitswarm's temporary files): ${JSON.stringify(name)}`
  return undefined
}

/**
 * Byte-wise order of two path components: the order of their UTF-8 bytes, which is Unicode code
 * point order. JavaScript's `<` compares UTF-16 code units and differs for characters above
 * U+FFFF (a surrogate pair sorts before U+E000..U+FFFF), so compare code points instead; no
 * encoding needed.
 */
export function compareComponents (a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // the first difference: two units of the same kind compare as their code points; a
    // surrogate (D800..DFFF, half of a code point >= U+10000) is above every other BMP unit
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs === ys) return x - y
    return xs ? 1 : -1
  }
  return a.length - b.length
}

/**
 * Order of two paths: component by component, byte-wise; a path sorts right before the paths
 * inside it. (Not the order of the joined strings: ["a", "x"] sorts before ["a-b"] here.)
 */
export function comparePaths (a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const c = compareComponents(a[i], b[i])
    if (c !== 0) return c
  }
  return a.length - b.length
}

/** Is `prefix` equal to `path` or a folder on its way? */
export function isPathPrefix (prefix: readonly string[], path: readonly string[]): boolean {
  if (prefix.length > path.length) return false
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== path[i]) return false
  return true
}

/** A path for messages: its components joined by '/', quoted. */
export function showPath (path: readonly string[]): string {
  return JSON.stringify(path.join('/'))
}
