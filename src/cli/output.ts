/**
 * Where a command's output goes. With --json, stdout carries only NDJSON events; diagnostics go
 * to stderr either way. On a terminal without --json, the stats line redraws in place.
 *
 * Names and paths come from peers' manifests, log lines from peers' and trackers' answers: a
 * terminal would obey the escape sequences, carriage returns and newlines in them (a forged
 * "complete" line, say). Text output shows such characters escaped (escapeText); JSON output
 * escapes the ones JSON itself leaves raw.
 */

/**
 * C0 controls, DEL, C1 controls (U+0080–U+009F: U+009B is a one-character CSI), and the
 * invisible characters that reorder or hide text: zero-width marks, bidi embeddings, overrides
 * and isolates (U+061C, U+200B–U+200F, U+202A–U+202E, U+2066–U+2069), line and paragraph
 * separators (U+2028, U+2029).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g
// JSON.stringify already escapes U+0000–U+001F
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g

const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

const hex4 = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/** `s` made safe for a terminal: `\n`, `\r`, `\t`, `\x1b`, `\u009b`, `\u202e`… shown, not obeyed. */
export function escapeText (s: string): string {
  return s.replace(UNSAFE, (c) => SHORT[c] ?? (c < '\u0080' ? '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0') : hex4(c)))
}

/** A template tag: the text as written, each interpolated value through escapeText. */
export function safeText (strings: TemplateStringsArray, ...values: unknown[]): string {
  let out = strings[0]
  for (let i = 0; i < values.length; i++) out += escapeText(String(values[i])) + strings[i + 1]
  return out
}

/** One NDJSON line: JSON that also escapes C1 controls and bidi marks (the values are unchanged). */
export function jsonLine (obj: unknown): string {
  return JSON.stringify(obj).replace(UNSAFE_IN_JSON, hex4)
}

export class Output {
  readonly json: boolean
  private readonly tty: boolean
  private readonly stdout: NodeJS.WriteStream
  /** lines of the live status block drawn last (0: none on screen) */
  private live = 0

  constructor (json: boolean, stdout: NodeJS.WriteStream = process.stdout) {
    this.json = json
    this.stdout = stdout
    this.tty = !json && stdout.isTTY === true
  }

  /**
   * One event: a JSON line with --json, stamped with `ts` (ms since the epoch, when it was
   * written), else `human` (if given) as a plain line.
   */
  event (obj: { event: string } & Record<string, unknown>, human?: string): void {
    if (this.json) {
      const { event, ...rest } = obj
      this.write(jsonLine({ event, ts: Date.now(), ...rest }) + '\n')
    } else if (human != null) {
      this.line(human)
    }
  }

  /** The terminal's width when the status redraws in place (80 if it does not say); undefined when piped. */
  get columns (): number | undefined {
    return this.tty ? this.stdout.columns ?? 80 : undefined
  }

  /** The terminal's height when the status redraws in place (24 if it does not say); undefined when piped. */
  get rows (): number | undefined {
    return this.tty ? this.stdout.rows ?? 24 : undefined
  }

  line (text: string): void {
    this.clearLive()
    this.write(text + '\n')
  }

  /**
   * A status line, and lines under it (the peers table): redrawn in place on a TTY (each cut to
   * the width, so that none wraps), plain lines otherwise.
   */
  status (text: string, below: readonly string[] = []): void {
    const lines = [text, ...below].map(escapeText)
    if (this.tty) {
      const width = this.columns ?? 80
      this.clearLive()
      this.write(lines.map(l => l.slice(0, Math.max(20, width - 1))).join('\n'))
      this.live = lines.length
    } else {
      this.write(lines.join('\n') + '\n')
    }
  }

  /** Diagnostics: stderr, one line each (log lines carry peers' words: escaped, newlines too). */
  warn (text: string): void {
    this.clearLive()
    process.stderr.write(escapeText(text) + '\n')
  }

  /** Erases the live status block: back to its first line (cursor up), and clear to the end of the screen. */
  private clearLive (): void {
    if (this.live === 0) return
    this.write('\r' + (this.live > 1 ? `\x1b[${this.live - 1}A` : '') + '\x1b[J')
    this.live = 0
  }

  private write (s: string): void {
    this.stdout.write(s)
  }
}
