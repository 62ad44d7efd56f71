/**
 * When to ask a peer for blocks again after it refused (rejected a request, or let one time
 * out). Asking again at once let a peer that claims every piece and rejects every request keep
 * us in a loop of ~9,000 request/reject pairs a second. Each refusal that comes while the peer is
 * not already backed off starts an "episode": no requests for BASE·2^(episodes−1) ms (capped),
 * then only a small probe until it delivers again. A peer that delivers a probe's worth of
 * blocks in a row is forgiven. One that refuses its probe too is useless until its pause ends
 * (a single episode is normal: BEP 6 rejects every queued request when a peer chokes us).
 * Pure: the clock is injected.
 */
import { backoffDelay } from '../backoff.js'

export interface RequestBackoffInit {
  /** first pause, ms (default 1000) */
  baseMs?: number
  /** longest pause, ms (default 60_000) */
  maxMs?: number
  /** requests in flight to a peer on probation; also how many blocks in a row forgive it (default 4) */
  probeDepth?: number
  now?: () => number
}

interface State {
  episodes: number
  until: number
  /** blocks delivered since the last refusal */
  streak: number
}

export class RequestBackoff {
  readonly probeDepth: number
  private readonly baseMs: number
  private readonly maxMs: number
  private readonly now: () => number
  private readonly peers = new Map<string, State>()

  constructor (init: RequestBackoffInit = {}) {
    this.baseMs = init.baseMs ?? 1000
    this.maxMs = init.maxMs ?? 60_000
    this.probeDepth = init.probeDepth ?? 4
    this.now = init.now ?? Date.now
  }

  /** The peer refused a request (reject, timeout). Returns true when this starts a new pause. */
  refused (peer: string): boolean {
    const now = this.now()
    let s = this.peers.get(peer)
    if (s === undefined) { s = { episodes: 0, until: 0, streak: 0 }; this.peers.set(peer, s) }
    s.streak = 0
    // the rest of a pipeline refused at once is one episode, not one per block
    if (now < s.until) return false
    s.episodes++
    s.until = now + backoffDelay(s.episodes, this.baseMs, this.maxMs)
    return true
  }

  /** The peer delivered a block we asked for. */
  delivered (peer: string): void {
    const s = this.peers.get(peer)
    if (s === undefined) return
    if (++s.streak >= this.probeDepth) this.peers.delete(peer)
  }

  /** May we send this peer requests now? */
  mayRequest (peer: string): boolean {
    const s = this.peers.get(peer)
    return s === undefined || this.now() >= s.until
  }

  /** Most requests to keep in flight to this peer (Infinity when it is in good standing). */
  depthLimit (peer: string): number {
    return this.peers.has(peer) ? this.probeDepth : Infinity
  }

  /** It refused even a probe, and is in the pause that followed: nothing to ask it for now. */
  useless (peer: string): boolean {
    const s = this.peers.get(peer)
    return s !== undefined && s.episodes >= 2 && this.now() < s.until
  }

  /** Pauses in a row without a probe answered: 0 for a peer in good standing. */
  episodes (peer: string): number {
    return this.peers.get(peer)?.episodes ?? 0
  }

  forget (peer: string): void {
    this.peers.delete(peer)
  }
}
