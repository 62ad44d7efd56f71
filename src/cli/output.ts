/**
 * Where a command's output goes. With --json, stdout carries only NDJSON events; diagnostics go
 * to stderr either way. On a terminal without --json, the stats line redraws in place.
 */
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
      this.write(JSON.stringify(obj) + '\n')
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
    if (this.tty) {
      const width = process.stdout.columns ?? 120
      this.write('\r\x1b[2K' + text.slice(0, Math.max(20, width - 1)))
      this.live = true
    } else {
      this.write(text + '\n')
    }
  }

  /** Diagnostics: stderr, one line each. */
  warn (text: string): void {
    this.clearLive()
    process.stderr.write(text + '\n')
  }

  private clearLive (): void {
    if (this.live) { this.write('\r\x1b[2K'); this.live = false }
  }

  private write (s: string): void {
    process.stdout.write(s)
  }
}
