/**
 * SessionSlots with fake sessions in a real SessionRegistry, on a fake clock, no network: when a
 * dial or a newcomer may have a slot, who is closed to make room, idle sessions, and the log
 * lines an attacker could multiply (one per kind per interval). Admission's policy itself is
 * tested in admission.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { SessionRegistry } from '../../src/swarm/sessions.js'
import { MAX_PEERS, SessionSlots, type SessionSlotsInit, type SlotSession } from '../../src/swarm/slots.js'

class FakeSession implements SlotSession {
  readonly direction = 'inbound' as const
  lastDownloadAt = 0
  lastUploadAt = 0
  amInterested = false
  peerInterested = false
  closes = 0

  constructor (readonly remotePeer: string, readonly connectedAt: number, private readonly registry: SessionRegistry<FakeSession>) {}

  /** as a PeerSession's close ends in the swarm's onClose, which unregisters it */
  close (): void {
    this.closes++
    this.registry.remove(this)
  }
}

interface Harness {
  slots: SessionSlots<FakeSession>
  sessions: SessionRegistry<FakeSession>
  logs: string[]
  advance: (ms: number) => void
  /** a session opened now (from `ip`) */
  open: (id: string, ip?: string) => FakeSession
}

const GRACE = 10_000
const IDLE = 120_000

function setup (init: Partial<Pick<SessionSlotsInit<FakeSession>, 'maxPeers' | 'admission'>> = {}): Harness {
  let t = 1_000_000
  const sessions = new SessionRegistry<FakeSession>({ self: 'self' })
  const logs: string[] = []
  const slots = new SessionSlots({ sessions, log: (m) => logs.push(m), now: () => t, ...init })
  const open = (id: string, ip?: string): FakeSession => {
    const s = new FakeSession(id, t, sessions)
    sessions.add(s, { source: 'incoming', ip })
    return s
  }
  return { slots, sessions, logs, advance: (ms) => { t += ms }, open }
}

describe('SessionSlots: room to spare', () => {
  it('dials and newcomers go ahead while there is room, dials under way counted', () => {
    const h = setup({ maxPeers: 3 })
    h.open('a')
    expect(h.slots.mayDial(1)).toBe(true)
    expect(h.slots.mayDial(2)).toBe(false)
    expect(h.slots.admit('b', '10.0.0.2')).toBe(true)
    expect(h.logs).toEqual([])
  })

  it('50 sessions by default', () => {
    expect(setup().slots.maxPeers).toBe(MAX_PEERS)
    expect(MAX_PEERS).toBe(50)
  })
})

describe('SessionSlots: full', () => {
  it('a newcomer is refused while every session is in its grace period, and that is said once per interval', () => {
    const h = setup({ maxPeers: 2 })
    h.open('a', '10.0.0.1')
    h.open('b', '10.0.0.2')
    expect(h.slots.admit('c', '10.0.0.3')).toBe(false)
    expect(h.slots.admit('d', '10.0.0.4')).toBe(false)
    expect(h.logs).toHaveLength(1)
    expect(h.logs[0]).toMatch(/^refused a session with c: /)
    expect(h.sessions.size).toBe(2)
  })

  it('an idle session past its grace yields its slot to a newcomer: closed, and said why', () => {
    const h = setup({ maxPeers: 2 })
    const a = h.open('a', '10.0.0.1')
    h.advance(GRACE + 50_000)
    const b = h.open('b', '10.0.0.2')
    expect(h.slots.admit('c', '10.0.0.3')).toBe(true)
    expect([a.closes, b.closes]).toEqual([1, 0])
    expect(h.sessions.has('a')).toBe(false)
    expect(h.logs).toEqual(['evicted a (10.0.0.1): no interest either way and no bytes for 60 s, to make room for c'])
  })

  it('a dial may go ahead when full only if as many idle sessions would make room', () => {
    const h = setup({ maxPeers: 2 })
    h.open('a')
    h.open('b')
    expect(h.slots.mayDial(0)).toBe(false)
    h.advance(GRACE + 1)
    // both idle past their grace: room for two dials, not three
    expect(h.slots.mayDial(0)).toBe(true)
    expect(h.slots.mayDial(1)).toBe(true)
    expect(h.slots.mayDial(2)).toBe(false)
    // nobody is closed for a dial: only the newcomer that lands makes room
    expect(h.sessions.size).toBe(2)
  })

  it('a session that moves bytes keeps its slot', () => {
    const h = setup({ maxPeers: 1 })
    const a = h.open('a')
    h.advance(GRACE + 1)
    a.lastDownloadAt = 1_000_000 + GRACE
    expect(h.slots.admit('b', '10.0.0.2')).toBe(false)
    expect(a.closes).toBe(0)
  })
})

describe('SessionSlots: idle sessions', () => {
  it('a session with no interest either way and no bytes for the idle timeout is closed, full or not', () => {
    const h = setup({ maxPeers: 10 })
    const a = h.open('a')
    const b = h.open('b')
    b.peerInterested = true
    h.advance(IDLE - 1)
    h.slots.evictIdle()
    expect(a.closes).toBe(0)
    h.advance(1)
    h.slots.evictIdle()
    expect([a.closes, b.closes]).toEqual([1, 0])
    expect(h.logs).toEqual(['evicted a: no interest either way and no bytes for 120 s, idle too long'])
  })

  it('evictions are logged once per interval, however many there are', () => {
    const h = setup({ maxPeers: 10 })
    for (const id of ['a', 'b', 'c']) h.open(id)
    h.advance(IDLE)
    h.slots.evictIdle()
    expect(h.sessions.size).toBe(0)
    expect(h.logs).toHaveLength(1)
  })
})

