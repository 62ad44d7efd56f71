/**
 * The swarm's session slots: whether a dial may go ahead or a newcomer be taken when the swarm
 * is full, closing whom Admission (pure policy, admission.ts) says should yield its slot, and
 * sessions idle for long even when the swarm is not full. Refusals and evictions are logged at
 * most once per interval per kind: an attacker decides how many there are. No sockets and no
 * timers: the swarm asks before each dial and each new session, and calls evictIdle every second.
 */
import { LogLimiter } from '../log-limiter.js'
import { shortId } from '../session/session.js'
import { Admission, type AdmissionInit, type SessionFacts } from './admission.js'
import type { RegistrySession, SessionRegistry } from './sessions.js'

/** Default of SessionSlotsInit.maxPeers. */
export const MAX_PEERS = 50

/** What the slots do to a session (a PeerSession is one). */
export interface SlotSession extends RegistrySession {
  /** closes it quietly (the reason is logged here, rate-limited) */
  close: () => void
}

export interface SessionSlotsInit<S extends SlotSession> {
  sessions: SessionRegistry<S>
  /** most sessions at once, dials under way included (default MAX_PEERS) */
  maxPeers?: number
  /** who may hold a slot when full: grace period, idle eviction, share per IP (see Admission) */
  admission?: Omit<AdmissionInit, 'maxPeers'>
  log?: (msg: string) => void
  now?: () => number
}

export class SessionSlots<S extends SlotSession> {
  readonly maxPeers: number
  private readonly sessions: SessionRegistry<S>
  private readonly admission: Admission
  private readonly logs: LogLimiter
  private readonly now: () => number

  constructor (init: SessionSlotsInit<S>) {
    this.sessions = init.sessions
    this.maxPeers = init.maxPeers ?? MAX_PEERS
    this.admission = new Admission({ ...init.admission, maxPeers: this.maxPeers })
    this.now = init.now ?? Date.now
    this.logs = new LogLimiter({ log: init.log ?? (() => {}), now: this.now })
  }

  /**
   * May one more dial go ahead, with `dialing` dials under way? Yes while there is room, and when
   * full if enough idle sessions would yield their slots (one each) to the dials that land.
   */
  mayDial (dialing: number): boolean {
    const over = this.sessions.size + dialing - this.maxPeers
    return over < 0 || this.admission.evictable(this.sessions.facts(), this.now()).length > over
  }

  /**
   * May a session with `newcomer` (from `ip`) be opened? Yes while there is room; when full, if
   * Admission finds a session to yield its slot (it is closed now), else no (logged).
   */
  admit (newcomer: string, ip: string | undefined): boolean {
    if (this.sessions.size < this.maxPeers) return true
    const d = this.admission.admit({ id: newcomer, ip }, this.sessions.facts(), this.now())
    if (!d.admit) {
      this.logs.log('refuse', `refused a session with ${shortId(newcomer)}: ${d.reason}`)
      return false
    }
    if (d.evict != null) this.evict(d.evict, `to make room for ${shortId(newcomer)}`)
    return true
  }

  /** Closes the sessions useless for long, even when the swarm is not full. */
  evictIdle (): void {
    for (const f of this.admission.idle(this.sessions.facts(), this.now())) this.evict(f, 'idle too long')
  }

  private evict (f: SessionFacts, why: string): void {
    const session = this.sessions.get(f.id)
    if (session == null) return
    const idleFor = Math.round((this.now() - Math.max(f.connectedAt, f.lastBytesAt)) / 1000)
    this.logs.log('evict', `evicted ${shortId(f.id)}${f.ip != null ? ` (${f.ip})` : ''}: ${f.interested ? 'no' : 'no interest either way and no'} bytes for ${idleFor} s, ${why}`)
    // quietly: the reason is logged above, at most once per interval however many there are
    session.close()
  }
}
