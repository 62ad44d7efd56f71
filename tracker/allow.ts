/**
 * The manifests a tracker serves (`tracker --allow <cid>`, `--allow-file FILE`): a whitelist, as
 * opentracker's and chihaya's. Parsing is pure; AllowList holds the current set and reloads its
 * file (on SIGHUP, see the CLI) without ever losing the list it has.
 */
import { readFile } from 'node:fs/promises'
import { CID } from 'multiformats/cid'

/** A CID on the command line or in the file at start is not a CIDv1 (the CLI's UsageError). */
export class AllowListError extends Error {
  override name = 'AllowListError'
}

/** What the request path needs: is this (normalized, see http.ts parseManifest) manifest tracked? */
export interface ManifestFilter {
  allows: (manifest: string) => boolean
}

/** The CID normalized as the tracker keys swarms (CIDv1, its default base), or undefined. */
export function normalizeAllowedCid (text: string): string | undefined {
  try {
    const cid = CID.parse(text)
    return cid.version === 1 ? cid.toString() : undefined
  } catch {
    return undefined
  }
}

export interface ParsedAllowFile {
  cids: string[]
  /** lines that are not a CIDv1: 1-based line number and the text (trimmed) */
  invalid: Array<{ line: number, text: string }>
}

/** One CID a line; blank lines and `#` comments (whole-line or after the CID) are ignored. */
export function parseAllowText (text: string): ParsedAllowFile {
  const cids: string[] = []
  const invalid: ParsedAllowFile['invalid'] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#')
    const line = (hash === -1 ? raw : raw.slice(0, hash)).trim()
    if (line === '') return
    const cid = normalizeAllowedCid(line)
    if (cid === undefined) invalid.push({ line: i + 1, text: line })
    else cids.push(cid)
  })
  return { cids, invalid }
}

export interface AllowListInit {
  /** `--allow` values, kept across reloads */
  cids?: string[]
  /** `--allow-file`, read at load() and at every reload() */
  file?: string
  /** warnings and reload results; default none */
  log?: (line: string) => void
}

function shown (text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)
}

export class AllowList implements ManifestFilter {
  readonly file: string | undefined
  private readonly fixed: ReadonlySet<string>
  private fromFile: ReadonlySet<string> = new Set()
  private readonly log: (line: string) => void

  /** Throws AllowListError for a `cids` entry that is not a CIDv1; call load() for the file. */
  constructor (init: AllowListInit = {}) {
    this.file = init.file
    this.log = init.log ?? (() => {})
    this.fixed = new Set((init.cids ?? []).map(text => {
      const cid = normalizeAllowedCid(text)
      if (cid === undefined) throw new AllowListError(`--allow ${shown(text)} is not a CIDv1`)
      return cid
    }))
  }

  /** An AllowList with its file read; strict: an unreadable file or a bad line throws AllowListError. */
  static async load (init: AllowListInit): Promise<AllowList> {
    const list = new AllowList(init)
    if (list.file !== undefined) {
      let text: string
      try {
        text = await readFile(list.file, 'utf8')
      } catch (err) {
        throw new AllowListError(`--allow-file ${list.file}: ${(err as Error).message}`)
      }
      const parsed = parseAllowText(text)
      const bad = parsed.invalid[0]
      if (bad !== undefined) throw new AllowListError(`--allow-file ${list.file} line ${bad.line}: ${shown(bad.text)} is not a CIDv1`)
      list.fromFile = new Set(parsed.cids)
    }
    return list
  }

  allows (manifest: string): boolean {
    return this.fixed.has(manifest) || this.fromFile.has(manifest)
  }

  /** how many manifests are allowed */
  get size (): number {
    let n = this.fixed.size
    for (const cid of this.fromFile) if (!this.fixed.has(cid)) n++
    return n
  }

  /**
   * Reads the file again. Lenient: a bad line is skipped with a warning; a file that cannot be
   * read keeps the current list (one line logged). Returns whether the list was replaced.
   * Never throws.
   */
  async reload (): Promise<boolean> {
    if (this.file === undefined) return false
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      this.log(`tracker: allow list not reloaded, keeping the old one (${this.size} manifests): ${(err as Error).message}`)
      return false
    }
    const parsed = parseAllowText(text)
    for (const bad of parsed.invalid) this.log(`tracker: ${this.file} line ${bad.line}: ${shown(bad.text)} is not a CIDv1, skipped`)
    this.fromFile = new Set(parsed.cids)
    this.log(`tracker: allow list reloaded from ${this.file}: ${this.size} manifests`)
    return true
  }
}
