/**
 * Transfer rate over a sliding window, in one-second buckets. The choker reads rates over
 * ~20 s ("the peers which have the best upload rate", BEP 3, measured over a rolling window);
 * the stats line reads a shorter window so the figure follows what happens now.
 */
export interface RateMeterInit {
  /** window length in ms (default 20_000) */
  windowMs?: number
  now?: () => number
}

const BUCKET_MS = 1000

export class RateMeter {
  private readonly buckets: Float64Array
  private readonly windowMs: number
  private readonly now: () => number
  private readonly startedAt: number
  private head: number // index of the bucket for `headSecond`
  private headSecond: number
  total = 0

  constructor (init: RateMeterInit = {}) {
    this.windowMs = init.windowMs ?? 20_000
    this.now = init.now ?? Date.now
    this.buckets = new Float64Array(Math.max(1, Math.ceil(this.windowMs / BUCKET_MS)))
    this.startedAt = this.now()
    this.headSecond = Math.floor(this.startedAt / BUCKET_MS)
    this.head = 0
  }

  private advance (): void {
    const second = Math.floor(this.now() / BUCKET_MS)
    const steps = Math.min(second - this.headSecond, this.buckets.length)
    for (let i = 0; i < steps; i++) {
      this.head = (this.head + 1) % this.buckets.length
      this.buckets[this.head] = 0
    }
    if (second > this.headSecond) this.headSecond = second
  }

  add (bytes: number): void {
    this.advance()
    this.buckets[this.head] += bytes
    this.total += bytes
  }

  /** bytes counted over the window (what rate() divides by the time) */
  windowBytes (): number {
    this.advance()
    let sum = 0
    for (const b of this.buckets) sum += b
    return sum
  }

  /** bytes per second over the window (or over the meter's life, if shorter) */
  rate (): number {
    const sum = this.windowBytes()
    // the current bucket is partly filled: count its elapsed fraction
    const now = this.now()
    const elapsed = Math.min(this.windowMs, Math.max(1, now - this.startedAt), (this.buckets.length - 1) * BUCKET_MS + (now % BUCKET_MS))
    return (sum * 1000) / Math.max(elapsed, BUCKET_MS)
  }
}
