/**
 * An upload rate cap shared by every session of a peer: a token bucket. Each session takes
 * tokens through its own share of the throttle before it writes a block; when the bucket is
 * empty, the waiting shares are served in turn by bytes (start-time fair queueing), so every
 * session with blocks to send gets its part of the rate, whatever the size of its blocks or the
 * depth of its peer's pipeline, and a share that waits for nothing leaves its part to the others.
 * Parts are equal unless the choker weighs them (setWeight): then a share with weight 2 gets
 * twice the bytes of one with weight 1 while both wait.
 */
export interface ThrottleInit {
  /** bytes per second; 0 or Infinity means no cap */
  rate: number
  /** how many bytes may go out at once after a quiet spell (default: rate / 4, at least 64 KiB) */
  burst?: number
  now?: () => number
}

/** One session's way into a Throttle: its turns are kept apart from the other shares'. */
export interface ThrottleShare {
  /** Takes `bytes` now if they are due and no share is waiting; false otherwise (then take()). */
  tryTake: (bytes: number) => boolean
  /** Resolves when `bytes` may be sent: in turn with the other waiting shares. */
  take: (bytes: number, signal?: AbortSignal) => Promise<void>
  /** Gives back tokens taken for bytes that were not sent after all (a cancelled block). */
  refund: (bytes: number) => void
  /** Its part of the rate relative to the other shares' (default 1; > 0), from the next take. */
  setWeight: (weight: number) => void
}

/** a share's place in the fair order: the virtual time at which its last taken bytes end */
interface Flow {
  finish: number
  /** bytes of this flow advance its virtual time by bytes / weight */
  weight: number
}

interface Waiter {
  flow: Flow
  bytes: number
  /** virtual start and finish of these bytes: the share with the lowest start goes first */
  start: number
  finish: number
  resolve: () => void
  reject: (err: unknown) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

const UNCAPPED: ThrottleShare = { tryTake: () => true, take: async () => {}, refund: () => {}, setWeight: () => {} }

export class Throttle {
  readonly rate: number
  private readonly burst: number
  private readonly now: () => number
  private tokens: number
  private last: number
  /** takes not yet served, in the order they came (ties in the fair order go to the earlier) */
  private readonly waiters: Waiter[] = []
  /** the start of the latest bytes taken: a share that was idle starts from here, not earlier */
  private vtime = 0
  private timer: ReturnType<typeof setTimeout> | undefined
  /** the share of callers that use the throttle directly: first come, first served */
  private readonly common: ThrottleShare
  /** a waiter sleeps until this many bytes are due: fewer, larger writes (at most ~5 ms of rate) */
  private readonly quantum: number

  constructor (init: ThrottleInit) {
    this.rate = init.rate > 0 ? init.rate : Infinity
    this.burst = init.burst ?? Math.max(64 * 1024, this.rate / 4)
    this.now = init.now ?? Date.now
    this.tokens = this.burst
    this.last = this.now()
    this.quantum = Math.min(this.burst, Math.max(16 * 1024, this.rate / 200))
    this.common = this.share()
  }

  get unlimited (): boolean {
    return this.rate === Infinity
  }

  /** A share for one session. Without a cap it is a constant that never waits. */
  share (): ThrottleShare {
    if (this.unlimited) return UNCAPPED
    const flow: Flow = { finish: this.vtime, weight: 1 }
    return {
      tryTake: (bytes) => this.tryTakeFor(flow, bytes),
      take: async (bytes, signal) => await this.takeFor(flow, bytes, signal),
      refund: (bytes) => { this.refundFor(flow, bytes) },
      setWeight: (weight) => { if (weight > 0 && Number.isFinite(weight)) flow.weight = weight }
    }
  }

  /** Takes `bytes` now if they are due and nobody is waiting; false otherwise (then take()). */
  tryTake (bytes: number): boolean {
    return this.common.tryTake(bytes)
  }

  /** Gives back tokens taken (tryTake, take) for bytes that were not sent after all. */
  refund (bytes: number): void {
    this.common.refund(bytes)
  }

  /** Resolves when `bytes` may be sent (callers without a share of their own: in order). */
  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    await this.common.take(bytes, signal)
  }

  private refill (): void {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000)
    this.last = now
  }

  /** a block larger than the bucket may go once the bucket is full */
  private due (bytes: number): boolean {
    return this.tokens >= Math.min(bytes, this.burst)
  }

  private tryTakeFor (flow: Flow, bytes: number): boolean {
    if (this.unlimited) return true
    if (this.waiters.length > 0) return false
    this.refill()
    if (!this.due(bytes)) return false
    this.tokens -= bytes
    this.vtime = Math.max(this.vtime, flow.finish)
    flow.finish = this.vtime + bytes / flow.weight
    return true
  }

  private async takeFor (flow: Flow, bytes: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.tryTakeFor(flow, bytes)) return
    signal?.throwIfAborted()
    const start = Math.max(this.vtime, flow.finish)
    flow.finish = start + bytes / flow.weight
    return await new Promise<void>((resolve, reject) => {
      const w: Waiter = { flow, bytes, start, finish: flow.finish, resolve, reject, signal, onAbort: undefined }
      if (signal != null) {
        w.onAbort = () => { this.drop(w) }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.waiters.push(w)
      this.schedule()
    })
  }

  private refundFor (flow: Flow, bytes: number): void {
    if (this.unlimited) return
    this.refill()
    this.tokens = Math.min(this.burst, this.tokens + bytes)
    flow.finish -= bytes / flow.weight
    if (this.waiters.length > 0) this.dispatch()
  }

  /** an aborted take: out of the line, and its share is not charged for it */
  private drop (w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i < 0) return
    this.waiters.splice(i, 1)
    if (w.flow.finish === w.finish) w.flow.finish = w.start
    if (this.waiters.length === 0 && this.timer != null) { clearTimeout(this.timer); this.timer = undefined }
    w.reject(w.signal?.reason)
  }

  /** the waiter whose bytes start first in the fair order */
  private next (): Waiter {
    let best = this.waiters[0]
    for (let i = 1; i < this.waiters.length; i++) if (this.waiters[i].start < best.start) best = this.waiters[i]
    return best
  }

  /** Serves waiters in the fair order while tokens last; then sleeps until more are due. */
  private dispatch (): void {
    this.refill()
    while (this.waiters.length > 0) {
      const w = this.next()
      if (!this.due(w.bytes)) break
      this.waiters.splice(this.waiters.indexOf(w), 1)
      this.tokens -= w.bytes
      this.vtime = Math.max(this.vtime, w.start)
      if (w.onAbort != null) w.signal?.removeEventListener('abort', w.onAbort)
      w.resolve()
    }
    this.schedule()
  }

  private schedule (): void {
    if (this.timer != null || this.waiters.length === 0) return
    this.refill()
    // sleep until a quantum is due, not just the next block: the waiters woken then send what
    // follows in the same write (with tryTake() when they are alone), instead of one wake per block
    const due = Math.min(this.burst, Math.max(this.next().bytes, this.quantum))
    const ms = Math.ceil(((due - this.tokens) * 1000) / this.rate)
    this.timer = setTimeout(() => { this.timer = undefined; this.dispatch() }, Math.max(1, ms))
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
