/**
 * Who may hold one of a swarm's session slots. Identities are free, so a full swarm must not be
 * a locked one: a session that can neither give us something nor take something from us, and
 * has moved no bytes lately, yields its slot to a newcomer. Newcomers get a grace period to show
 * they are useful — except those of an address holding more than its share of the slots, or one
 * host cycling throw-away identities would keep every slot "new". When the swarm is full, an
 * address past its share can only replace a session from the same address (so identities on one
 * host cannot push out the peers of others, yet many honest peers on one host — a LAN, a test on
 * 127.0.0.1 — are not limited while there is room).
 *
 * Pure policy: the swarm gives the facts and the clock, and closes whom it is told to.
 */

/** What the policy needs to know of one session. */
export interface SessionFacts {
  id: string
  /** the remote's IP address, when known */
  ip?: string
  /** ms when the session began */
  connectedAt: number
  /** ms of the last block moved either way (0: none yet) */
  lastBytesAt: number
  /** either end wants something the other has (interest either way) */
  interested: boolean
}

export interface AdmissionInit {
  /** most sessions at once (default 50) */
  maxPeers?: number
  /** sessions one IP address keeps once the swarm is full, and past which its newcomers get no grace (default 8) */
  maxPerIp?: number
  /** ms a newcomer is safe from eviction, to handshake and say what it wants (default 10_000) */
  grace?: number
  /** a session that moved bytes within this many ms is safe from eviction (default 30_000) */
  activeWindow?: number
  /** ms with no interest either way and no bytes, after which a session is closed even when the swarm is not full (default 120_000) */
  idleTimeout?: number
}

export type AdmitDecision =
  | { admit: true, evict?: SessionFacts }
  | { admit: false, reason: string }

export class AdmissionConfigError extends Error {
  override name = 'AdmissionConfigError'
}

export class Admission {
  readonly maxPeers: number
  readonly maxPerIp: number
  readonly grace: number
  readonly activeWindow: number
  readonly idleTimeout: number

  constructor (init: AdmissionInit = {}) {
    this.maxPeers = positive('maxPeers', init.maxPeers ?? 50)
    this.maxPerIp = positive('maxPerIp', init.maxPerIp ?? 8)
    this.grace = nonNegative('grace', init.grace ?? 10_000)
    this.activeWindow = nonNegative('activeWindow', init.activeWindow ?? 30_000)
    this.idleTimeout = nonNegative('idleTimeout', init.idleTimeout ?? 120_000)
  }

  /**
   * May a newcomer open a session? Yes while there is room; when full, only by replacing the
   * least useful session that is past its grace period and has moved no bytes lately.
   */
  admit (newcomer: { id: string, ip?: string }, sessions: readonly SessionFacts[], now: number): AdmitDecision {
    const others = sessions.filter(s => s.id !== newcomer.id)
    if (others.length < this.maxPeers) return { admit: true }
    let candidates = this.evictable(others, now)
    const fromIp = newcomer.ip == null ? 0 : others.filter(s => s.ip === newcomer.ip).length
    if (newcomer.ip != null && fromIp >= this.maxPerIp) {
      // over its share: it may only take the place of a session from its own address
      candidates = candidates.filter(s => s.ip === newcomer.ip)
      if (candidates.length === 0) return { admit: false, reason: `full (${others.length} sessions) and ${newcomer.ip} already holds ${fromIp}, none of them idle` }
    }
    const victim = candidates[0]
    if (victim == null) return { admit: false, reason: `full (${others.length} sessions), none idle for ${Math.round(this.activeWindow / 1000)} s past a ${Math.round(this.grace / 1000)} s grace period` }
    return { admit: true, evict: victim }
  }

  /**
   * Sessions that may be evicted for a newcomer, the one to go first first: no bytes for
   * `activeWindow`, and past its grace period (if it has one); those with no interest either
   * way before those with some; then those from addresses holding more than their share; then
   * the longest without use.
   */
  evictable (sessions: readonly SessionFacts[], now: number): SessionFacts[] {
    const perIp = new Map<string, number>()
    for (const s of sessions) if (s.ip != null) perIp.set(s.ip, (perIp.get(s.ip) ?? 0) + 1)
    const isCrowded = (s: SessionFacts): boolean => s.ip != null && (perIp.get(s.ip) ?? 0) > this.maxPerIp
    const crowded = (s: SessionFacts): number => isCrowded(s) ? 0 : 1
    return sessions
      .filter(s => !this.protected(s, now, isCrowded(s)))
      .sort((a, b) =>
        Number(a.interested) - Number(b.interested) ||
        crowded(a) - crowded(b) ||
        lastUse(a) - lastUse(b) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** Sessions useless for `idleTimeout`: no interest either way, no bytes, past grace. */
  idle (sessions: readonly SessionFacts[], now: number): SessionFacts[] {
    return sessions.filter(s => !s.interested && now - s.connectedAt >= this.grace && now - lastUse(s) >= this.idleTimeout)
  }

  private protected (s: SessionFacts, now: number, crowded: boolean): boolean {
    if (s.lastBytesAt > 0 && now - s.lastBytesAt < this.activeWindow) return true
    // no grace for an address past its share: it could reconnect (or swap identities) faster
    // than the grace period runs out, and keep its slots for ever
    return !crowded && now - s.connectedAt < this.grace
  }
}

function lastUse (s: SessionFacts): number {
  return Math.max(s.connectedAt, s.lastBytesAt)
}

function positive (name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new AdmissionConfigError(`${name} must be a whole number ≥ 1, got ${v}`)
  return v
}

function nonNegative (name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new AdmissionConfigError(`${name} must be a number ≥ 0, got ${v}`)
  return v
}
