/**
 * RequestLoop with fake sessions, a real picker and a fake clock, no network: whom we are
 * interested in, how deep each pipeline is, and what becomes of requests that are rejected, time
 * out, are passed over or are dropped by a choke (RequestBackoff decides the pauses).
 */
import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { BLOCK_SIZE, PiecePicker, requestDepth } from '../../src/picker/picker.js'
import { REQUEST_TIMEOUT_MS, RequestLoop, SKIP_GRACE_MS, SLOW_START_BYTES, SLOW_START_RATE, type RequestSession } from '../../src/swarm/requests.js'
import type { BlockSpec } from '../../src/wire/codec.js'

const B = BLOCK_SIZE
const PIECES = 40
const PIECE = 4 * B

/** A session as the loop sees it: flags set by the test, calls recorded. */
class FakeSession implements RequestSession {
  closed = false
  peerChoking = true
  amInterested = false
  haveStateReceived = false
  peerHas: Bitfield | undefined
  rate = 0
  readonly down = { total: 0, rate: () => this.rate }
  /** every setInterested call */
  readonly interest: boolean[] = []
  /** every block requested, in order */
  readonly requested: BlockSpec[] = []
  /** what the next expireRequests / expireSkipped return */
  timedOut: BlockSpec[] = []
  passedOver: BlockSpec[] = []
  readonly timeouts: number[] = []
  readonly graces: number[] = []

  constructor (readonly remotePeer: string) {}

  setInterested (interested: boolean): void {
    this.amInterested = interested
    this.interest.push(interested)
  }

  request (blocks: BlockSpec[]): void {
    this.requested.push(...blocks)
  }

  expireRequests (timeoutMs: number): BlockSpec[] {
    this.timeouts.push(timeoutMs)
    return this.timedOut.splice(0)
  }

  expireSkipped (graceMs: number): BlockSpec[] {
    this.graces.push(graceMs)
    return this.passedOver.splice(0)
  }
}

interface Harness {
  loop: RequestLoop<FakeSession>
  picker: PiecePicker
  sessions: Map<string, FakeSession>
  logs: string[]
  advance: (ms: number) => void
  setDone: (done: boolean) => void
  /** a session whose have-state (default: every piece) has arrived; unchoked and filled unless told */
  connect: (id: string, opts?: { has?: Bitfield, unchoke?: boolean }) => FakeSession
  /** the peer unchokes us */
  unchoke: (s: FakeSession) => void
  /** the peer sends these blocks we asked it for, as the swarm hands them on */
  deliver: (s: FakeSession, blocks: BlockSpec[]) => void
}

function setup (init: { requestTimeout?: number } = {}): Harness {
  let t = 1_000_000
  let done = false
  const picker = new PiecePicker({ pieceCount: PIECES, pieceLength: PIECE, totalLength: PIECES * PIECE, random: () => 0 })
  const sessions = new Map<string, FakeSession>()
  const logs: string[] = []
  const loop = new RequestLoop<FakeSession>({ picker, sessions, done: () => done, log: (m) => logs.push(m), now: () => t, ...init })
  const unchoke = (s: FakeSession): void => {
    s.peerChoking = false
    loop.fill(s)
  }
  const connect: Harness['connect'] = (id, opts = {}) => {
    const s = new FakeSession(id)
    sessions.set(id, s)
    s.haveStateReceived = true
    s.peerHas = opts.has ?? Bitfield.full(PIECES)
    loop.haveState(s)
    if (opts.unchoke !== false) unchoke(s)
    return s
  }
  const deliver = (s: FakeSession, blocks: BlockSpec[]): void => {
    for (const b of blocks) {
      expect(picker.blockReceived(s.remotePeer, b.piece, b.offset).accepted).toBe(true)
      loop.delivered(s)
    }
  }
  return { loop, picker, sessions, logs, advance: (ms) => { t += ms }, setDone: (d) => { done = d }, connect, unchoke, deliver }
}

const keys = (blocks: BlockSpec[]): string[] => blocks.map(b => `${b.piece}:${b.offset}`).sort()

describe('RequestLoop: interest', () => {
  it('a peer with pieces we lack is interesting; it is asked for blocks once it unchokes us', () => {
    const h = setup()
    const s = h.connect('seed', { unchoke: false })
    expect(s.interest).toEqual([true])
    expect(s.requested).toEqual([])
    h.unchoke(s)
    expect(s.requested.length).toBeGreaterThan(0)
  })

  it('a peer with nothing we lack is not interesting, and is not asked', () => {
    const h = setup()
    const s = h.connect('empty', { has: new Bitfield(PIECES) })
    expect(s.amInterested).toBe(false)
    expect(s.requested).toEqual([])
  })

  it('a peer that gains a piece we lack becomes interesting', () => {
    const h = setup()
    const s = h.connect('leech', { has: new Bitfield(PIECES) })
    h.loop.have(s, 7)
    expect(s.amInterested).toBe(true)
    expect(s.requested.map(b => b.piece)).toEqual([7, 7, 7, 7])
  })

  it('once we are done nobody is interesting, and nobody is asked', () => {
    const h = setup()
    h.setDone(true)
    const s = h.connect('seed')
    expect(s.amInterested).toBe(false)
    s.amInterested = true // as if it had been set before we finished
    h.loop.fill(s)
    expect(s.requested).toEqual([])
  })

  it('a session whose have-state has not arrived is left alone', () => {
    const h = setup()
    const s = new FakeSession('early')
    h.loop.updateInterest(s)
    expect(s.interest).toEqual([])
  })
})

describe('RequestLoop: pipeline depth', () => {
  it('slow start: a new peer gets as many requests as a 1 MiB/s peer would (16 blocks)', () => {
    const h = setup()
    const s = h.connect('seed')
    expect(s.requested).toHaveLength(requestDepth(SLOW_START_RATE))
    expect(s.requested).toHaveLength(16)
    expect(h.picker.inFlight('seed')).toBe(16)
  })

  it('past slow start the depth is about a second of the peer\'s rate, at least 4 blocks', () => {
    const h = setup()
    const slow = h.connect('slow', { unchoke: false })
    slow.down.total = SLOW_START_BYTES
    h.unchoke(slow)
    expect(slow.requested).toHaveLength(4)
    const fast = h.connect('fast', { unchoke: false })
    fast.down.total = SLOW_START_BYTES
    fast.rate = 40 * B
    h.unchoke(fast)
    expect(fast.requested).toHaveLength(40)
  })

  it('tops the pipeline up in batches of a quarter of its depth, not one request per block', () => {
    const h = setup()
    const s = h.connect('seed')
    h.deliver(s, s.requested.slice(0, 3))
    h.loop.fill(s)
    expect(s.requested).toHaveLength(16)
    h.deliver(s, s.requested.slice(3, 4))
    h.loop.fill(s)
    expect(s.requested).toHaveLength(20)
    expect(h.picker.inFlight('seed')).toBe(16)
  })

  it('a closed session, or one that chokes us, is not asked', () => {
    const h = setup()
    const choking = h.connect('choking', { unchoke: false })
    h.loop.fill(choking)
    const closed = h.connect('closed', { unchoke: false })
    closed.peerChoking = false
    closed.closed = true
    h.loop.fill(closed)
    expect([choking.requested, closed.requested]).toEqual([[], []])
  })
})

describe('RequestLoop: refusals (RequestBackoff)', () => {
  it('a reject hands the block back and pauses the peer; after the pause it gets a probe of 4', () => {
    const h = setup()
    const s = h.connect('rejecter')
    for (const b of s.requested) h.loop.rejected(s, b)
    expect(h.picker.inFlight('rejecter')).toBe(0)
    h.loop.fill(s)
    expect(s.requested).toHaveLength(16)
    h.advance(999)
    h.loop.fill(s)
    expect(s.requested).toHaveLength(16)
    h.advance(1)
    h.loop.fill(s)
    expect(s.requested).toHaveLength(20)
    // a pipeline rejected at once is one pause, and a first pause is not worth a line
    expect(h.logs).toEqual([])
    expect(s.amInterested).toBe(true)
  })

  it('the blocks it rejected go to another peer', () => {
    const h = setup()
    const other = h.connect('other', { unchoke: false })
    const s = h.connect('rejecter')
    const asked = [...s.requested]
    for (const b of asked) h.loop.rejected(s, b)
    h.unchoke(other)
    expect(keys(other.requested)).toEqual(keys(asked))
  })

  it('a peer that refuses its probe too is not interesting until its pause ends, and says so once', () => {
    const h = setup()
    const s = h.connect('rejecter')
    for (const b of s.requested) h.loop.rejected(s, b)
    h.advance(1000)
    h.loop.fill(s)
    const probe = s.requested.slice(16)
    expect(probe).toHaveLength(4)
    for (const b of probe) h.loop.rejected(s, b)
    expect(h.logs).toEqual(['rejecter rejected a request again (2 times in a row): not asking it for a while'])
    expect(s.amInterested).toBe(false)
    // the second pause is 2 s: the tick's expire makes it interesting again, and probes
    h.advance(1999)
    h.loop.expire(s)
    expect(s.amInterested).toBe(false)
    h.advance(1)
    h.loop.expire(s)
    expect(s.amInterested).toBe(true)
    expect(s.requested).toHaveLength(24)
  })

  it('a peer that delivers its probe is forgiven: full depth again', () => {
    const h = setup()
    const s = h.connect('flaky')
    for (const b of s.requested) h.loop.rejected(s, b)
    h.advance(1000)
    h.loop.fill(s)
    expect(s.requested).toHaveLength(20)
    h.deliver(s, s.requested.slice(16))
    h.loop.fill(s)
    expect(h.picker.inFlight('flaky')).toBe(16)
  })
})

describe('RequestLoop: expire (every tick)', () => {
  it('uses the request timeout and the skip grace', () => {
    const h = setup({ requestTimeout: 5_000 })
    const s = h.connect('seed')
    h.loop.expire(s)
    expect(s.timeouts).toEqual([5_000])
    expect(s.graces).toEqual([SKIP_GRACE_MS])
    const d = setup()
    const s2 = d.connect('seed')
    d.loop.expire(s2)
    expect(s2.timeouts).toEqual([REQUEST_TIMEOUT_MS])
  })

  it('requests that timed out go back to the picker and count as a refusal', () => {
    const h = setup()
    const s = h.connect('slowpoke')
    s.timedOut = s.requested.slice(0, 2)
    h.loop.expire(s)
    expect(h.picker.inFlight('slowpoke')).toBe(14)
    // paused: nothing more until the pause is over, however empty its pipeline
    h.loop.fill(s)
    expect(s.requested).toHaveLength(16)
    h.advance(1000)
    s.timedOut = s.requested.slice(2, 16)
    h.loop.expire(s)
    expect(h.logs).toEqual(['slowpoke let 14 requests time out again (2 times in a row): not asking it for a while'])
    expect(s.amInterested).toBe(false)
  })

  it('requests passed over count as a refusal too', () => {
    const h = setup()
    const s = h.connect('skipper')
    s.passedOver = s.requested.slice(0, 3)
    h.loop.expire(s)
    expect(h.picker.inFlight('skipper')).toBe(13)
    h.advance(1000)
    s.passedOver = s.requested.slice(3, 4)
    h.loop.expire(s)
    expect(h.logs).toEqual(['skipper passed over 1 requests again (2 times in a row): not asking it for a while'])
  })

  it('nothing expired: a peer we are not interested in is looked at again', () => {
    const h = setup()
    const s = h.connect('leech', { has: new Bitfield(PIECES) })
    expect(s.amInterested).toBe(false)
    s.peerHas?.set(3)
    h.picker.peerHave('leech', 3) // as if we had missed its interest change: expire catches up
    h.loop.expire(s)
    expect(s.amInterested).toBe(true)
  })
})

describe('RequestLoop: chokes and closes', () => {
  it('a choke hands the dropped requests to other peers', () => {
    const h = setup()
    const other = h.connect('other', { unchoke: false })
    other.peerChoking = false
    const s = h.connect('choker')
    const dropped = [...s.requested]
    s.peerChoking = true
    h.loop.choked(s, dropped)
    expect(h.picker.inFlight('choker')).toBe(0)
    expect(keys(other.requested)).toEqual(keys(dropped))
  })

  it('a closed session\'s requests, pieces and refusals are forgotten', () => {
    const h = setup()
    const s = h.connect('gone')
    h.loop.rejected(s, s.requested[0])
    h.sessions.delete('gone')
    h.loop.sessionClosed(s)
    expect(h.picker.inFlight('gone')).toBe(0)
    expect(h.picker.isInteresting('gone')).toBe(false)
    // it comes back at once: no pause carried over, a full pipeline
    const again = h.connect('gone')
    expect(again.requested).toHaveLength(16)
  })
})
