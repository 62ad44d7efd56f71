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
  private live = false

  constructor (json: boolean, stdout: NodeJS.WriteStream = process.stdout) {
    this.json = json
    this.tty = !json && stdout.isTTY === true
  }

  /** One event: a JSON line with --json, else `human` (if given) as a plain line. */
  event (obj: { event: string } & Record<string, unknown>, human?: string): void {
    if (this.json) {
      this.write(jsonLine(obj) + '\n')
    } else if (human != null) {
      this.line(human)
    }
  }

  line (text: string): void {
    this.clearLive()
    this.write(text + '\n')
  }

  /** A status line: redrawn in place on a TTY, a plain line otherwise. */
  status (text: string): void {
    text = escapeText(text)
    if (this.tty) {
      const width = process.stdout.columns ?? 120
      this.write('\r\x1b[2K' + text.slice(0, Math.max(20, width - 1)))
      this.live = true
    } else {
      this.write(text + '\n')
    }
  }

  /** Diagnostics: stderr, one line each (log lines carry peers' words: escaped, newlines too). */
  warn (text: string): void {
    this.clearLive()
    process.stderr.write(escapeText(text) + '\n')
  }

  private clearLive (): void {
    if (this.live) { this.write('\r\x1b[2K'); this.live = false }
  }

  private write (s: string): void {
    process.stdout.write(s)
  }
}
