/**
 * The request loop: which peers we are interested in, and which blocks we ask each for and when.
 * It keeps about a second of each peer's rate in flight (the picker says which blocks), hands
 * requests a peer let time out or passed over back to the picker, and backs off from a peer that
 * refuses (RequestBackoff): such a peer gets only a probe, and one that refuses its probe too is
 * not interesting until its pause ends. It also tells the picker what each peer has. No sockets
 * and no timers: the swarm calls it on each message and every second (expire), and passes in the
 * picker, its sessions and the clock, so tests drive it with fake sessions and a fake clock.
 */
import type { Bitfield } from '../bitfield.js'
import { requestDepth, type PiecePicker } from '../picker/picker.js'
import { shortId } from '../session/session.js'
import type { BlockSpec } from '../wire/codec.js'
import { RequestBackoff } from './request-backoff.js'

/** A peer's first SLOW_START_BYTES are requested as if it sent SLOW_START_RATE (16 blocks of 64 KiB deep). */
export const SLOW_START_BYTES = 4 * 1024 * 1024
export const SLOW_START_RATE = 1024 * 1024
/** A request the peer passed over while answering one sent this much later is given up on. */
export const SKIP_GRACE_MS = 2000
/** Default of RequestLoopInit.requestTimeout. */
export const REQUEST_TIMEOUT_MS = 30_000

/** What the loop reads of and does to a session (a PeerSession is one). */
export interface RequestSession {
  readonly remotePeer: string
  readonly closed: boolean
  readonly peerChoking: boolean
  readonly amInterested: boolean
  readonly haveStateReceived: boolean
  /** the remote's have-state (set once haveStateReceived) */
  readonly peerHas: Bitfield | undefined
  /** what it has sent us: in all, and lately */
  readonly down: { readonly total: number, rate: () => number }
  setInterested: (interested: boolean) => void
  request: (blocks: BlockSpec[]) => void
  /** requests outstanding longer than `timeoutMs`, cancelled and returned */
  expireRequests: (timeoutMs: number) => BlockSpec[]
  /** requests it passed over while answering one sent `graceMs` later, cancelled and returned */
  expireSkipped: (graceMs: number) => BlockSpec[]
}

/** What the loop uses of the picker. */
export type RequestPicker = Pick<PiecePicker, 'addPeer' | 'peerHave' | 'removePeer' | 'isInteresting' | 'inFlight' | 'pick' | 'requestFailed'>

export interface RequestLoopInit<S extends RequestSession> {
  picker: RequestPicker
  /** the open sessions (the swarm's SessionRegistry) */
  sessions: { values: () => Iterable<S> }
  /** the download is over (or there was none): we are interested in nobody */
  done: () => boolean
  /** a request not answered within this many ms is given to another peer (default REQUEST_TIMEOUT_MS) */
  requestTimeout?: number
  /** whom we have stopped asking for a while (default a new one on `now`) */
  backoff?: RequestBackoff
  log?: (msg: string) => void
  now?: () => number
}

export class RequestLoop<S extends RequestSession> {
  private readonly picker: RequestPicker
  private readonly sessions: { values: () => Iterable<S> }
  private readonly done: () => boolean
  private readonly requestTimeout: number
  private readonly backoff: RequestBackoff
  private readonly log: (msg: string) => void

  constructor (init: RequestLoopInit<S>) {
    this.picker = init.picker
    this.sessions = init.sessions
    this.done = init.done
    this.requestTimeout = init.requestTimeout ?? REQUEST_TIMEOUT_MS
    this.backoff = init.backoff ?? new RequestBackoff({ now: init.now })
    this.log = init.log ?? (() => {})
  }

  /** The session's have-state arrived: the picker learns what it has, and we may want some. */
  haveState (session: S): void {
    const has = session.peerHas as Bitfield
    this.picker.addPeer(session.remotePeer, has.isComplete() ? 'all' : has.count() === 0 ? 'none' : has)
    this.updateInterest(session)
  }

  /** The peer has one more piece. */
  have (session: S, piece: number): void {
    this.picker.peerHave(session.remotePeer, piece)
    this.updateInterest(session)
  }

  /** The peer choked us: the requests it dropped go to others. */
  choked (session: S, dropped: BlockSpec[]): void {
    for (const b of dropped) this.picker.requestFailed(session.remotePeer, b)
    this.fillAll()
  }

  /** The peer rejected a request: it goes to others, and the peer is asked less for a while. */
  rejected (session: S, block: BlockSpec): void {
    this.picker.requestFailed(session.remotePeer, block)
    this.refused(session, 'rejected a request')
    this.fillAll()
  }

  /** The peer delivered a block we asked for (it counts towards forgiving a refusal). */
  delivered (session: S): void {
    this.backoff.delivered(session.remotePeer)
  }

  /**
   * The session is gone: its refusals are forgotten and the picker drops its requests and what
   * it had. The caller fills the other sessions (`fillAll`) when it is ready to.
   */
  sessionClosed (session: S): void {
    this.backoff.forget(session.remotePeer)
    this.picker.removePeer(session.remotePeer)
  }

  /**
   * Every second, per session: requests that timed out, or that the peer passed over while
   * answering later ones, go to others and count as a refusal; a peer whose pause has ended is
   * interesting again (a probe follows).
   */
  expire (session: S): void {
    const expired = session.expireRequests(this.requestTimeout)
    const skipped = session.expireSkipped(SKIP_GRACE_MS)
    for (const b of expired) this.picker.requestFailed(session.remotePeer, b)
    for (const b of skipped) this.picker.requestFailed(session.remotePeer, b)
    if (expired.length > 0) this.refused(session, `let ${expired.length} requests time out`)
    else if (skipped.length > 0) this.refused(session, `passed over ${skipped.length} requests`)
    else if (!session.amInterested) this.updateInterest(session)
  }

  /** Tells the peer whether we want anything of it (and asks for it if so). */
  updateInterest (session: S): void {
    if (!session.haveStateReceived) return
    const interesting = !this.done() && this.picker.isInteresting(session.remotePeer) && !this.backoff.useless(session.remotePeer)
    session.setInterested(interesting)
    if (interesting) this.fill(session)
  }

  /** Tops up the session's pipeline of requests, if it is worth asking now. */
  fill (session: S): void {
    if (session.closed || session.peerChoking || !session.amInterested || this.done()) return
    if (!this.backoff.mayRequest(session.remotePeer)) return
    // keep about one second of this peer's rate in flight (at least a few blocks); until the
    // peer has sent a few MiB its rate says little, so start as if it were fast (slow start
    // from 4 blocks costs many round trips on a fast link)
    const rate = session.down.total < SLOW_START_BYTES ? Math.max(session.down.rate(), SLOW_START_RATE) : session.down.rate()
    // a peer that refused lately gets only a small probe until it delivers again. Counted in
    // 64 KiB blocks even when pieces (and so blocks) are smaller: sized by the real block, the
    // pipelines of a 6 MiB swarm of 16 KiB pieces ran four times deeper, the free-rider of the
    // integration test took 0.68x the honest rate instead of 0.44x, and the honest rate fell
    const depth = Math.min(requestDepth(rate), this.backoff.depthLimit(session.remotePeer))
    const inFlight = this.picker.inFlight(session.remotePeer)
    const want = depth - inFlight
    // top the pipeline up in batches, not one request per block received
    if (want <= 0 || (want < Math.ceil(depth / 4) && inFlight > 0)) return
    session.request(this.picker.pick(session.remotePeer, want))
  }

  fillAll (): void {
    for (const s of this.sessions.values()) this.fill(s)
  }

  /**
   * The peer refused a request (reject or timeout): we stop asking it for a while, so that a
   * peer that rejects everything does not keep us in a request/reject loop; once it refuses a
   * probe too we are not interested in it meanwhile (it is useless to us). See RequestBackoff.
   */
  private refused (session: S, what: string): void {
    if (!this.backoff.refused(session.remotePeer)) return
    const n = this.backoff.episodes(session.remotePeer)
    if (n > 1) this.log(`${shortId(session.remotePeer)} ${what} again (${n} times in a row): not asking it for a while`)
    this.updateInterest(session)
  }
}
