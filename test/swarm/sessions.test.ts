/**
 * SessionRegistry with fake sessions and no network: registering and looking up sessions, the
 * duplicate-connection tie-break (both ends keep the same stream), what is kept beside each
 * session and that it goes with it, and the facts handed to Admission.
 */
import { describe, expect, it } from 'vitest'
import { SessionRegistry, type Direction, type RegistrySession } from '../../src/swarm/sessions.js'

interface FakeSession extends RegistrySession {
  /** a label, to tell two sessions with the same peer apart */
  name: string
}

const fake = (remotePeer: string, direction: Direction = 'outbound', over: Partial<FakeSession> = {}): FakeSession => ({
  name: `${remotePeer}/${direction}`,
  remotePeer,
  direction,
  connectedAt: 1000,
  lastDownloadAt: 0,
  lastUploadAt: 0,
  amInterested: false,
  peerInterested: false,
  ...over
})

const registry = (self = 'self'): SessionRegistry<FakeSession> => new SessionRegistry<FakeSession>({ self })

describe('SessionRegistry: add, look up, remove', () => {
  it('finds a session by peer id, counts it, and iterates in the order sessions were added', () => {
    const r = registry()
    const [c, a, b] = [fake('c'), fake('a', 'inbound'), fake('b')]
    r.add(c, { source: 'tracker' })
    r.add(a, { source: 'incoming', ip: '10.0.0.1' })
    r.add(b, { source: 'pex' })
    expect(r.size).toBe(3)
    expect(r.has('a')).toBe(true)
    expect(r.get('a')).toBe(a)
    expect(r.has('z')).toBe(false)
    expect(r.get('z')).toBeUndefined()
    expect([...r.values()]).toEqual([c, a, b])
    expect(r.facts().map(f => f.id)).toEqual(['c', 'a', 'b'])
  })

  it('keeps the source and IP beside each session', () => {
    const r = registry()
    r.add(fake('a'), { source: 'dht', ip: '10.0.0.1' })
    r.add(fake('b'), { source: 'pex' })
    expect(r.sourceOf('a')).toBe('dht')
    expect(r.ipOf('a')).toBe('10.0.0.1')
    expect(r.sourceOf('b')).toBe('pex')
    expect(r.ipOf('b')).toBeUndefined()
    expect(r.sourceOf('z')).toBeUndefined()
  })

  it('counts sessions by source, every source present', () => {
    const r = registry()
    r.add(fake('a'), { source: 'tracker' })
    r.add(fake('b'), { source: 'tracker' })
    r.add(fake('c', 'inbound'), { source: 'incoming' })
    const counts = r.sourceCounts()
    expect(counts.tracker).toBe(2)
    expect(counts.incoming).toBe(1)
    expect(counts.pex).toBe(0)
    expect(registry().sourceCounts()).toEqual({ ...counts, tracker: 0, incoming: 0 })
  })

  it('a removed session is forgotten, and so are its source and IP', () => {
    const r = registry()
    const a = fake('a')
    r.add(a, { source: 'dht', ip: '10.0.0.1' })
    r.add(fake('b'), { source: 'pex' })
    expect(r.remove(a)).toBe(true)
    expect(r.size).toBe(1)
    expect(r.has('a')).toBe(false)
    expect(r.get('a')).toBeUndefined()
    expect(r.sourceOf('a')).toBeUndefined()
    expect(r.ipOf('a')).toBeUndefined()
    expect(r.sourceCounts().dht).toBe(0)
    expect(r.facts().map(f => f.id)).toEqual(['b'])
    // removing it again does nothing
    expect(r.remove(a)).toBe(false)
    expect(r.size).toBe(1)
  })

  it('removing a session that was replaced leaves its replacement (and its facts) alone', () => {
    const r = registry()
    const old = fake('a', 'outbound')
    const now = fake('a', 'inbound', { name: 'new' })
    r.add(old, { source: 'tracker', ip: '10.0.0.1' })
    r.add(now, { source: 'incoming', ip: '10.0.0.2' })
    expect(r.size).toBe(1)
    expect(r.remove(old)).toBe(false)
    expect(r.get('a')).toBe(now)
    expect(r.sourceOf('a')).toBe('incoming')
    expect(r.ipOf('a')).toBe('10.0.0.2')
  })

  it('a session removed and added again goes to the end of the order', () => {
    const r = registry()
    const a = fake('a')
    r.add(a, { source: 'tracker' })
    r.add(fake('b'), { source: 'tracker' })
    r.remove(a)
    const a2 = fake('a', 'inbound')
    r.add(a2, { source: 'incoming' })
    expect([...r.values()].map(s => s.remotePeer)).toEqual(['b', 'a'])
  })

  it('iteration sees removals made while it runs (a session closed in a loop over them)', () => {
    const r = registry()
    const [a, b, c] = [fake('a'), fake('b'), fake('c')]
    for (const s of [a, b, c]) r.add(s, { source: 'tracker' })
    const seen: string[] = []
    for (const s of r.values()) {
      seen.push(s.remotePeer)
      if (s === a) r.remove(b)
    }
    expect(seen).toEqual(['a', 'c'])
  })
})

describe('SessionRegistry: the duplicate-connection tie-break', () => {
  it('the same direction twice is a reconnect: the new one wins, whatever the ids', () => {
    for (const self of ['a', 'z']) {
      const r = registry(self)
      for (const d of ['inbound', 'outbound'] as const) {
        expect(r.keepsNew(fake('m', d), d)).toBe(true)
      }
    }
  })

  it('we sort first: our own (outbound) stream is kept, theirs dropped, whichever came first', () => {
    const r = registry('a')
    // ours arrives second: it replaces theirs
    expect(r.keepsNew(fake('b', 'inbound'), 'outbound')).toBe(true)
    // theirs arrives second: dropped
    expect(r.keepsNew(fake('b', 'outbound'), 'inbound')).toBe(false)
  })

  it('the peer sorts first: its (inbound) stream is kept, ours dropped, whichever came first', () => {
    const r = registry('b')
    expect(r.keepsNew(fake('a', 'inbound'), 'outbound')).toBe(false)
    expect(r.keepsNew(fake('a', 'outbound'), 'inbound')).toBe(true)
  })

  it('both ends keep the same stream: the one opened by the peer whose id sorts first', () => {
    // two peers dial each other at once; each end sees both streams, in either order
    const ids = ['QmLow', 'QmZed']
    for (const [x, y] of [[ids[0], ids[1]], [ids[1], ids[0]]]) {
      for (const firstAtX of ['x', 'y'] as const) {
        for (const firstAtY of ['x', 'y'] as const) {
          // a stream is named by who opened it: x's is outbound at x and inbound at y
          const kept = (self: string, other: string, first: 'x' | 'y'): string => {
            const r = registry(self)
            const dir = (opener: 'x' | 'y'): Direction => (opener === 'x') === (self === x) ? 'outbound' : 'inbound'
            const second = first === 'x' ? 'y' : 'x'
            const s1 = fake(other, dir(first), { name: first })
            r.add(s1, { source: 'tracker' })
            if (!r.keepsNew(s1, dir(second))) return first
            r.remove(s1)
            r.add(fake(other, dir(second), { name: second }), { source: 'tracker' })
            return (r.get(other) as FakeSession).name
          }
          const atX = kept(x, y, firstAtX)
          const atY = kept(y, x, firstAtY)
          expect(atX).toBe(atY)
          // the kept stream is the one opened by the lower id
          expect(atX).toBe(x < y ? 'x' : 'y')
        }
      }
    }
  })
})

describe('SessionRegistry: facts for Admission', () => {
  it('each session: id, IP, when it began, its last bytes either way, interest either way', () => {
    const r = registry()
    r.add(fake('a', 'outbound', { connectedAt: 5, lastDownloadAt: 70, lastUploadAt: 40, amInterested: true }), { source: 'tracker', ip: '10.0.0.1' })
    r.add(fake('b', 'inbound', { connectedAt: 9, lastUploadAt: 30, peerInterested: true }), { source: 'incoming' })
    r.add(fake('c', 'inbound', { connectedAt: 11 }), { source: 'incoming', ip: '10.0.0.3' })
    expect(r.facts()).toEqual([
      { id: 'a', ip: '10.0.0.1', connectedAt: 5, lastBytesAt: 70, interested: true },
      { id: 'b', ip: undefined, connectedAt: 9, lastBytesAt: 30, interested: true },
      { id: 'c', ip: '10.0.0.3', connectedAt: 11, lastBytesAt: 0, interested: false }
    ])
  })

  it('facts are read when asked for, not when the session was added', () => {
    const r = registry()
    const a = fake('a')
    r.add(a, { source: 'tracker' })
    Object.assign(a, { lastDownloadAt: 500, peerInterested: true })
    expect(r.facts()[0]).toMatchObject({ lastBytesAt: 500, interested: true })
  })
})
