/**
 * An upload rate cap shared by every session of a peer: a token bucket. A session takes tokens
 * for each block before it writes it; when the bucket is empty the caller waits, first come
 * first served, so one fast peer cannot starve the others.
 */
export interface ThrottleInit {
  /** bytes per second; 0 or Infinity means no cap */
  rate: number
  /** how many bytes may go out at once after a quiet spell (default: rate / 4, at least 64 KiB) */
  burst?: number
  now?: () => number
}

export class Throttle {
  readonly rate: number
  private readonly burst: number
  private readonly now: () => number
  private tokens: number
  private last: number
  private queue: Promise<void> = Promise.resolve()
  /** callers of take() not yet served */
  private waiting = 0
  /** a waiter sleeps until this many bytes are due: fewer, larger writes (at most ~5 ms of rate) */
  private readonly quantum: number

  constructor (init: ThrottleInit) {
    this.rate = init.rate > 0 ? init.rate : Infinity
    this.burst = init.burst ?? Math.max(64 * 1024, this.rate / 4)
    this.now = init.now ?? Date.now
    this.tokens = this.burst
    this.last = this.now()
    this.quantum = Math.min(this.burst, Math.max(16 * 1024, this.rate / 200))
  }

  get unlimited (): boolean {
    return this.rate === Infinity
  }

  /** Takes `bytes` now if they are due and nobody is waiting; false otherwise (then take()). */
  tryTake (bytes: number): boolean {
    if (this.unlimited) return true
    if (this.waiting > 0) return false
    this.refill()
    if (this.tokens < Math.min(bytes, this.burst)) return false
    this.tokens -= bytes
    return true
  }

  /** Resolves when `bytes` may be sent. */
  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return
    this.waiting++
    const turn = this.queue.then(async () => { await this.wait(bytes, signal) })
    // the next caller waits for this one, whatever happens to it
    this.queue = turn.catch(() => {})
    try {
      await turn
    } finally {
      this.waiting--
    }
  }

  private refill (): void {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000)
    this.last = now
  }

  private async wait (bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted()
      this.refill()
      // a block larger than the bucket may go once the bucket is full
      if (this.tokens >= Math.min(bytes, this.burst)) {
        this.tokens -= bytes
        return
      }
      // sleep until a quantum is due, not just this block: the caller then sends what follows
      // with tryTake() in the same write, instead of waking once per 16 KiB block
      const due = Math.min(this.burst, Math.max(bytes, this.quantum))
      const ms = Math.ceil(((due - this.tokens) * 1000) / this.rate)
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, Math.max(1, ms))
        signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason) }, { once: true })
      })
    }
  }
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 }

/** Parses "20MiB", "512k", "1048576" (per second; "/s" optional) into bytes per second. */
export function parseRate (text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:\/s)?\s*$/i.exec(text)
  const unit = m == null ? undefined : UNITS[m[2].toLowerCase()]
  if (m == null || unit == null) throw new RangeError(`not a rate: ${text} (try 20MiB or 512KiB)`)
  return Math.round(Number(m[1]) * unit)
}
