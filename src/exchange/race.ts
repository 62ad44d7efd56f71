/**
 * The manifest race: a newcomer that knows only a CID asks several of the peers it was told of
 * at once for the manifest, each with a short deadline, and the first verified answer wins.
 * Asking one peer after another let 200 fake tracker entries pointing at a tarpit hold a `get`
 * for minutes (each dead peer cost a full dial timeout).
 *
 * Who is asked next: peers are grouped by host (the IP of their first address), and the group
 * asked least so far goes first, so a crowd of fake entries from one host cannot queue ahead of
 * the peers of every other host. Peers told of later join the race; one that failed is asked
 * again after a delay that doubles per failure (by itself: a peer that refused us for a moment,
 * as a rate limit on new connections does when many newcomers knock at once, must not wait for
 * the tracker's next answer, 30 s away).
 *
 * How many at once: `parallel` to begin with; each peer that held its place for `slow` ms and
 * then failed (a tarpit: it takes the connection and never answers) widens the race by one, up
 * to `maxParallel`. Peers that fail fast (refused, not found) free their place at once anyway.
 *
 * Its only timers are each question's deadline and each failed peer's retry; I/O is injected;
 * memory is bounded.
 */
import { addressKey } from '../discovery/dial-guard.js'
import { DialRefusedError } from '../discovery/guarded-dial.js'
import type { PeerAddress } from '../discovery/types.js'
import { backoffDelay } from '../backoff.js'

export interface ManifestRaceInit<T> {
  /** Asks one peer; must give up when `signal` fires. Its first result wins the race. */
  ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T>
  /** peers asked at once, to begin with (default 8) … */
  parallel?: number
  /** … and at most, after slow failures (default 32) */
  maxParallel?: number
  /** ms after which a failure counts as slow (default 1_000) */
  slow?: number
  /** ms one peer has to answer, dial included (default 4_000) */
  timeout?: number
  /** ms before a peer that failed is asked again (default 2_000), doubling per failure … */
  retryDelay?: number
  /** … up to this (default 120_000) */
  maxRetryDelay?: number
  /** peers remembered, waiting or failed (default 1_000) */
  maxPeers?: number
  now?: () => number
  log?: (msg: string) => void
}

/** The race was stopped before any peer answered. */
export class RaceStoppedError extends Error {
  override name = 'RaceStoppedError'
}

interface Failed { fails: number, retryAt: number }

export class ManifestRace<T> {
  /** Resolves with the first answer; rejects with RaceStoppedError if stopped first. */
  readonly result: Promise<T>
  private readonly init: ManifestRaceInit<T>
  private parallel: number
  private readonly maxParallel: number
  private readonly slow: number
  private readonly timeout: number
  private readonly retryDelay: number
  private readonly maxRetryDelay: number
  private readonly maxPeers: number
  private readonly now: () => number
  private readonly log: (msg: string) => void
  /** waiting to be asked, in the order we heard of them */
  private readonly waiting = new Map<string, { peer: PeerAddress, host: string }>()
  private readonly asking = new Set<string>()
  private readonly failed = new Map<string, Failed>()
  /** peers asked so far, per host */
  private readonly askedPerHost = new Map<string, number>()
  private readonly abort = new AbortController()
  private readonly retries = new Set<ReturnType<typeof setTimeout>>()
  private resolve!: (value: T) => void
  private reject!: (err: Error) => void
  private done = false

  constructor (init: ManifestRaceInit<T>) {
    this.init = init
    this.parallel = init.parallel ?? 8
    this.maxParallel = Math.max(init.maxParallel ?? 32, this.parallel)
    this.slow = init.slow ?? 1_000
    this.timeout = init.timeout ?? 4_000
    this.retryDelay = init.retryDelay ?? 2_000
    this.maxRetryDelay = Math.max(init.maxRetryDelay ?? 120_000, this.retryDelay)
    this.maxPeers = init.maxPeers ?? 1_000
    this.now = init.now ?? Date.now
    this.log = init.log ?? (() => {})
    if (!Number.isInteger(this.parallel) || this.parallel < 1) throw new RangeError(`parallel must be a positive integer, got ${this.parallel}`)
    this.result = new Promise<T>((resolve, reject) => { this.resolve = resolve; this.reject = reject })
    // a caller that only awaits `result` later must not see an unhandled rejection meanwhile
    this.result.catch(() => {})
  }

  /** Peers to ask (again, if they failed long enough ago); starts asking at once. */
  add (peers: PeerAddress[]): void {
    if (this.done) return
    const now = this.now()
    for (const peer of peers) {
      const id = peer.peerId
      if (this.waiting.has(id) || this.asking.has(id) || peer.multiaddrs.length === 0) continue
      const f = this.failed.get(id)
      if (f != null && now < f.retryAt) continue
      if (this.waiting.size >= this.maxPeers) break
      this.waiting.set(id, { peer, host: hostOf(peer) })
    }
    this.pump()
  }

  /** Peers that may be asked at once now. */
  get width (): number {
    return this.parallel
  }

  /** Peers asked right now. */
  get inFlight (): number {
    return this.asking.size
  }

  /** Peers waiting to be asked. */
  get queued (): number {
    return this.waiting.size
  }

  /** Gives up: every question in flight is aborted, `result` rejects. */
  stop (): void {
    if (this.done) return
    this.done = true
    this.abort.abort()
    this.waiting.clear()
    this.clearRetries()
    this.reject(new RaceStoppedError('manifest race stopped'))
  }

  private pump (): void {
    while (!this.done && this.asking.size < this.parallel) {
      const next = this.pickNext()
      if (next == null) return
      this.waiting.delete(next.peer.peerId)
      this.askedPerHost.set(next.host, (this.askedPerHost.get(next.host) ?? 0) + 1)
      void this.askOne(next.peer)
    }
  }

  /** The earliest-heard peer of the host asked least so far. */
  private pickNext (): { peer: PeerAddress, host: string } | undefined {
    let best: { peer: PeerAddress, host: string } | undefined
    let bestCount = Infinity
    for (const w of this.waiting.values()) {
      const count = this.askedPerHost.get(w.host) ?? 0
      if (count < bestCount) {
        best = w
        bestCount = count
        if (count === 0) break
      }
    }
    return best
  }

  private retryLater (peer: PeerAddress, ms: number): void {
    const timer = setTimeout(() => {
      this.retries.delete(timer)
      // due now, whatever Date.now() says: timers run on another clock and may fire a
      // millisecond before retryAt, and add() would then skip the peer for good (a get that
      // waited on its one seeder hung until the test's timeout)
      const f = this.failed.get(peer.peerId)
      if (f != null) f.retryAt = Math.min(f.retryAt, this.now())
      this.add([peer])
    }, ms)
    timer.unref?.()
    this.retries.add(timer)
  }

  private clearRetries (): void {
    for (const t of this.retries) clearTimeout(t)
    this.retries.clear()
  }

  private async askOne (peer: PeerAddress): Promise<void> {
    const id = peer.peerId
    this.asking.add(id)
    const started = this.now()
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeout)])
    try {
      const value = await this.init.ask(peer, signal)
      if (this.done) return
      this.done = true
      // the others lose: stop asking them
      this.abort.abort()
      this.waiting.clear()
      this.clearRetries()
      this.resolve(value)
    } catch (err) {
      if (this.done) return
      if (this.now() - started >= this.slow) this.parallel = Math.min(this.maxParallel, this.parallel + 1)
      const f = this.failed.get(id) ?? { fails: 0, retryAt: 0 }
      f.fails++
      f.retryAt = this.now() + backoffDelay(f.fails, this.retryDelay, this.maxRetryDelay)
      this.failed.delete(id)
      if (this.failed.size >= this.maxPeers) {
        const oldest = this.failed.keys().next()
        if (oldest.done !== true) this.failed.delete(oldest.value)
      }
      this.failed.set(id, f)
      this.retryLater(peer, f.retryAt - this.now())
      // refusals are the dial guard at work (an attack sends them by the hundred): no line each
      if (!(err instanceof DialRefusedError)) this.log(`manifest from ${id}: ${signal.aborted && !this.abort.signal.aborted ? `no answer within ${this.timeout} ms` : (err as Error).message}`)
    } finally {
      this.asking.delete(id)
      this.pump()
    }
  }
}

/** The host (IP or DNS name) of a peer's first dialable address; the peer id when none is. */
function hostOf (peer: PeerAddress): string {
  for (const a of peer.multiaddrs) {
    const key = addressKey(a)
    if (key == null) continue
    // "1.2.3.4:5", "[::1]:5" → host; a relay route stays whole
    const colon = key.lastIndexOf(':')
    return key.startsWith('/') || colon < 0 ? key : key.slice(0, colon)
  }
  return peer.peerId
}
