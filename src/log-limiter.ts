/**
 * Logging for things an attacker can make happen as often as it likes (refused connections,
 * evicted sessions): at most one line per kind per interval, the next one saying how many
 * were left out, so that a flood cannot flood the log too.
 */
export interface LogLimiterInit {
  log: (msg: string) => void
  /** ms between two lines of one kind (default 10_000) */
  interval?: number
  now?: () => number
}

export class LogLimiter {
  private readonly out: (msg: string) => void
  private readonly interval: number
  private readonly now: () => number
  /** per kind: when it may log next, and how many lines were left out since */
  private readonly kinds = new Map<string, { next: number, skipped: number }>()

  constructor (init: LogLimiterInit) {
    this.out = init.log
    this.interval = init.interval ?? 10_000
    this.now = init.now ?? Date.now
  }

  log (kind: string, msg: string): void {
    const now = this.now()
    const k = this.kinds.get(kind)
    if (k != null && now < k.next) { k.skipped++; return }
    const skipped = k?.skipped ?? 0
    this.out(skipped > 0 ? `${msg} (and ${skipped} more like it in the last ${Math.round(this.interval / 1000)} s)` : msg)
    // kinds are a handful of fixed strings: the map stays small
    this.kinds.set(kind, { next: now + this.interval, skipped: 0 })
  }
}
