/**
 * Which files of a folder manifest a selection (`get --select`) takes. Pure: no I/O.
 *
 * A glob is matched against a file's whole path inside the folder, its components joined by '/':
 *   `*`   any run of characters within one component (none too), never '/'
 *   `?`   exactly one character (one Unicode code point), never '/'
 *   `**`  as a whole component (alone, first, last or between others): any number of whole
 *         components, none included; `**` inside a component (`a**b`) is an error
 * Every other character stands for itself: no character classes, braces or escapes, so file names
 * with `[`, `{`, `(` or `!` need no quoting. Dot files are matched like any other (unlike a shell).
 * Case-sensitive; glob and path are compared in Unicode NFC, so a name typed decomposed (as macOS
 * may) matches the same name composed.
 *
 * Hand-written rather than picomatch/minimatch: those bring bash's whole grammar (classes, braces,
 * extglobs, negation), pick the path separator by the platform unless told, and hide dot files by
 * default; this grammar is three tokens. Matching runs in O(glob × path) steps (no regular
 * expressions, so no backtracking blow-up on names from an untrusted manifest).
 */

/** A glob that is not a valid selection; `reason` says why. */
export class InvalidGlobError extends Error {
  override name = 'InvalidGlobError'
  constructor (readonly glob: string, readonly reason: string) {
    super(`invalid selection ${JSON.stringify(glob)}: ${reason}`)
  }
}

/** No file of the manifest matches any glob of the selection. */
export class EmptySelectionError extends Error {
  override name = 'EmptySelectionError'
  constructor (readonly globs: readonly string[]) {
    super(`no file matches the selection ${globs.map(g => JSON.stringify(g)).join(', ')}`)
  }
}

/** A compiled selection: true when the file at `path` (its components) is selected. */
export type PathMatcher = (path: readonly string[]) => boolean

/** A glob is typed by a person: this is far more than any real one needs. */
export const MAX_GLOB_LENGTH = 4096

const STAR = 0 // `*` inside a component
const ANY = 1 // `?`
/** one code point of a name, or a wildcard */
type Token = string | typeof STAR | typeof ANY
/** a component of a glob: `**`, or the tokens of one component */
type Part = null | readonly Token[]

/** A matcher that is true when any of `globs` matches; InvalidGlobError for the first bad one. */
export function compileSelection (globs: readonly string[]): PathMatcher {
  if (globs.length === 0) throw new InvalidGlobError('', 'a selection needs at least one glob')
  const compiled = globs.map(compileGlob)
  return (path) => {
    const names = path.map(n => Array.from(n.normalize('NFC')))
    return compiled.some(parts => matchPath(parts, names))
  }
}

/**
 * The indexes (ascending) of `files` that `globs` select; InvalidGlobError for a bad glob,
 * EmptySelectionError when none is selected.
 */
export function selectFiles (files: ReadonlyArray<{ readonly path: readonly string[] }>, globs: readonly string[]): number[] {
  const matches = compileSelection(globs)
  const out: number[] = []
  for (const [i, f] of files.entries()) if (matches(f.path)) out.push(i)
  if (out.length === 0) throw new EmptySelectionError(globs)
  return out
}

function compileGlob (glob: string): Part[] {
  if (typeof glob !== 'string') throw new InvalidGlobError(String(glob), 'not a string')
  const fail = (reason: string): never => { throw new InvalidGlobError(glob, reason) }
  if (glob === '') fail('it is empty')
  if (glob.length > MAX_GLOB_LENGTH) fail(`it is longer than ${MAX_GLOB_LENGTH} characters`)
  if (glob.includes('\0')) fail('it contains NUL')
  if (glob.includes('\\')) fail("it contains '\\': paths inside a folder are separated by '/'")
  if (!glob.isWellFormed()) fail('it is not well-formed Unicode')
  if (glob.startsWith('/')) fail('it is absolute: paths are inside the folder, as a/b.jpg')
  if (glob.endsWith('/')) fail(`it ends with '/': to select a folder and all in it, use ${JSON.stringify(`${glob}**`)}`)
  const parts: Part[] = []
  for (const comp of glob.normalize('NFC').split('/')) {
    if (comp === '') fail("it has an empty component ('//')")
    if (comp === '.' || comp === '..') fail(`it contains the component ${JSON.stringify(comp)}`)
    if (comp === '**') {
      // `**/**` is `**`: one is enough, and fewer stars keep matching linear
      if (parts[parts.length - 1] !== null) parts.push(null)
      continue
    }
    if (comp.includes('**')) fail("'**' must be a whole component, as in a/**/b.jpg")
    parts.push(Array.from(comp, (ch): Token => ch === '*' ? STAR : ch === '?' ? ANY : ch))
  }
  return parts
}

/** `parts` against the path's components: `**` (null) takes any number of whole components. */
function matchPath (parts: readonly Part[], names: ReadonlyArray<readonly string[]>): boolean {
  return wildcard(parts, names, (p) => p === null, (p, name) => p !== null && matchName(p, name))
}

/** the tokens of one glob component against one name (its code points) */
function matchName (tokens: readonly Token[], name: readonly string[]): boolean {
  return wildcard(tokens, name, (t) => t === STAR, (t, ch) => t === ANY || t === ch)
}

/**
 * Wildcard matching of `pattern` against all of `input`: a star takes any run of units, every
 * other item exactly one unit for which `one` holds. Greedy with a return to the last star: when
 * an item fails, the last star takes one unit more. Enough for stars that match anything, and at
 * most pattern × input steps.
 */
function wildcard<P, U> (pattern: readonly P[], input: readonly U[], isStar: (p: P) => boolean, one: (p: P, u: U) => boolean): boolean {
  let p = 0
  let i = 0
  let star = -1 // the last star seen in the pattern
  let resume = 0 // where in the input that star's run ends now
  while (i < input.length) {
    if (p < pattern.length && isStar(pattern[p])) {
      star = p++
      resume = i
    } else if (p < pattern.length && one(pattern[p], input[i])) {
      p++
      i++
    } else if (star >= 0) {
      p = star + 1
      i = ++resume
    } else {
      return false
    }
  }
  while (p < pattern.length && isStar(pattern[p])) p++
  return p === pattern.length
}
