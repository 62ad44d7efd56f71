import { describe, expect, it } from 'vitest'
import { Admission, AdmissionConfigError, type SessionFacts } from '../../src/swarm/admission.js'
import { LogLimiter } from '../../src/log-limiter.js'

const S = 1000

/** A session that connected at `at` and did nothing since, unless told otherwise. */
function session (id: string, over: Partial<SessionFacts> = {}): SessionFacts {
  return { id, ip: '10.0.0.1', connectedAt: 0, lastBytesAt: 0, interested: false, ...over }
}

/** `n` sessions, each from its own address unless told otherwise. */
function many (n: number, prefix: string, over: Partial<SessionFacts> = {}): SessionFacts[] {
  return Array.from({ length: n }, (_, i) => session(`${prefix}${String(i).padStart(3, '0')}`, { ip: `10.1.0.${i}`, ...over }))
}

describe('Admission: who holds the session slots', () => {
  const policy = new Admission({ maxPeers: 5, maxPerIp: 2, grace: 10 * S, activeWindow: 30 * S, idleTimeout: 120 * S })

  it('admits anyone while there is room, with no eviction', () => {
    expect(policy.admit({ id: 'new', ip: '10.0.0.9' }, many(4, 'a'), 0)).toEqual({ admit: true })
  })

  it('the attack: full of idle sessions past their grace, a newcomer takes the place of one of them', () => {
    const d = policy.admit({ id: 'honest', ip: '10.0.0.9' }, many(5, 'idle', { ip: '10.6.6.6' }), 11 * S)
    expect(d.admit).toBe(true)
    expect(d.admit && d.evict?.id).toBe('idle000')
  })

  it('newcomers get a grace period: full of sessions younger than it, the newcomer is refused, with a reason', () => {
    const d = policy.admit({ id: 'new', ip: '10.0.0.9' }, many(5, 'young', { connectedAt: 5 * S }), 11 * S)
    expect(d.admit).toBe(false)
    expect(!d.admit && d.reason).toMatch(/full \(5 sessions\), none idle/)
  })

  it('sessions that moved bytes lately are never evicted, whatever their interest', () => {
    const busy = many(5, 'busy', { lastBytesAt: 100 * S, interested: false })
    expect(policy.admit({ id: 'new' }, busy, 129 * S).admit).toBe(false)
    // 30 s after their last byte they are fair game
    expect(policy.admit({ id: 'new' }, busy, 130 * S).admit).toBe(true)
  })

  it('evicts a session no one is interested in before one with interest, then the longest unused', () => {
    const sessions = [
      session('wants', { ip: '10.0.0.1', interested: true, connectedAt: 0 }),
      session('old-useless', { ip: '10.0.0.2', connectedAt: 1 * S, lastBytesAt: 2 * S }),
      session('older-useless', { ip: '10.0.0.3', connectedAt: 1 * S }),
      session('fresh', { ip: '10.0.0.4', connectedAt: 55 * S }),
      session('recent-bytes', { ip: '10.0.0.5', lastBytesAt: 50 * S })
    ]
    const order = policy.evictable(sessions, 60 * S).map(s => s.id)
    expect(order).toEqual(['older-useless', 'old-useless', 'wants'])
  })

  it('interested sessions that move nothing can still be evicted (interest alone does not hold a slot for ever)', () => {
    const d = policy.admit({ id: 'new', ip: '10.0.0.9' }, many(5, 'asks', { interested: true }), 31 * S)
    expect(d.admit && d.evict?.id).toBe('asks000')
  })

  it('when full, an address over its share only replaces its own sessions', () => {
    // 10.6.6.6 holds 3 idle sessions (share 2), 10.0.0.1 holds 2 idle ones that are older
    const sessions = [
      session('honest-a', { ip: '10.0.0.1', connectedAt: 0 }),
      session('honest-b', { ip: '10.0.0.1', connectedAt: 0 }),
      session('sybil-a', { ip: '10.6.6.6', connectedAt: 5 * S }),
      session('sybil-b', { ip: '10.6.6.6', connectedAt: 5 * S }),
      session('sybil-c', { ip: '10.6.6.6', connectedAt: 5 * S })
    ]
    // another sybil from the crowded address can only push out one of its own
    const d = policy.admit({ id: 'sybil-d', ip: '10.6.6.6' }, sessions, 20 * S)
    expect(d.admit && d.evict?.ip).toBe('10.6.6.6')
    // and when none of its own is evictable (they move bytes) it is refused, though others are
    const busy = sessions.map(s => s.ip === '10.6.6.6' ? { ...s, lastBytesAt: 19 * S } : s)
    const r = policy.admit({ id: 'sybil-d', ip: '10.6.6.6' }, busy, 20 * S)
    expect(r.admit).toBe(false)
    expect(!r.admit && r.reason).toMatch(/10\.6\.6\.6 already holds 3/)
    // a newcomer from elsewhere goes for the crowded address first, though its sessions are younger
    const h = policy.admit({ id: 'honest-c', ip: '10.0.0.2' }, sessions, 20 * S)
    expect(h.admit && h.evict?.ip).toBe('10.6.6.6')
  })

  it('an address past its share gets no grace: one host swapping identities faster than the grace period runs out cannot keep every slot', () => {
    const cycling = many(5, 'sybil', { ip: '10.6.6.6', connectedAt: 19 * S })
    const d = policy.admit({ id: 'honest', ip: '10.0.0.9' }, cycling, 20 * S)
    expect(d.admit && d.evict?.ip).toBe('10.6.6.6')
    // within its share, an address's newcomers keep their grace
    const fair = [...many(2, 'a', { ip: '10.6.6.6', connectedAt: 19 * S }), ...many(3, 'b', { connectedAt: 19 * S })]
    expect(policy.admit({ id: 'honest', ip: '10.0.0.9' }, fair, 20 * S).admit).toBe(false)
  })

  it('on one address (a LAN, a test on 127.0.0.1) the share does not stop anyone while there is room, and eviction still works when full', () => {
    const local = { ip: '127.0.0.1' }
    expect(policy.admit({ id: 'n', ...local }, many(4, 'l', local), 0)).toEqual({ admit: true })
    const d = policy.admit({ id: 'n', ...local }, many(5, 'l', local), 11 * S)
    expect(d.admit && d.evict?.id).toBe('l000')
    // there every address is past its share, so no one has grace: a newcomer that wants
    // something is kept over idle ones by its interest, and by its bytes once they flow
    const mixed = [session('honest-new', { ...local, connectedAt: 10 * S, interested: true }), ...many(4, 'idle', { ...local, connectedAt: 10 * S })]
    const e = policy.admit({ id: 'n2', ...local }, mixed, 11 * S)
    expect(e.admit && e.evict?.id).toBe('idle000')
  })

  it('a reconnecting session does not count against itself', () => {
    expect(policy.admit({ id: 'a000' }, many(5, 'a', { connectedAt: 5 * S }), 6 * S)).toEqual({ admit: true })
  })

  it('idle(): no interest either way and no bytes for idleTimeout, whether full or not', () => {
    const sessions = [
      session('idle', { connectedAt: 0 }),
      session('idle-but-moved-bytes', { lastBytesAt: 100 * S }),
      session('interested', { interested: true }),
      session('new', { connectedAt: 119 * S })
    ]
    expect(policy.idle(sessions, 120 * S).map(s => s.id)).toEqual(['idle'])
    expect(policy.idle(sessions, 119 * S)).toEqual([])
  })

  it('is deterministic: ties are broken by id', () => {
    const a = policy.evictable(many(5, 'x').reverse(), 60 * S).map(s => s.id)
    const b = policy.evictable(many(5, 'x'), 60 * S).map(s => s.id)
    expect(a).toEqual(b)
  })

  it('refuses nonsense settings with a named error', () => {
    expect(() => new Admission({ maxPeers: 0 })).toThrow(AdmissionConfigError)
    expect(() => new Admission({ maxPerIp: 1.5 })).toThrow(AdmissionConfigError)
    expect(() => new Admission({ grace: -1 })).toThrow(AdmissionConfigError)
  })
})

describe('LogLimiter', () => {
  it('one line per kind per interval; the next says how many were left out', () => {
    let now = 0
    const out: string[] = []
    const l = new LogLimiter({ log: (m) => out.push(m), interval: 10 * S, now: () => now })
    for (let i = 0; i < 100; i++) l.log('evict', `evicted ${i}`)
    l.log('refuse', 'refused')
    expect(out).toEqual(['evicted 0', 'refused'])
    now = 10 * S
    l.log('evict', 'evicted again')
    expect(out[2]).toBe('evicted again (and 99 more like it in the last 10 s)')
  })
})
