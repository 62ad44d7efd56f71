/**
 * ChokeRounds with fake sessions and no network: what the choker is shown of each session, and
 * how its decisions are applied (unchoke, choke, upload shares), at rechokes, every tick and when
 * a peer becomes interested. Most tests use a stub policy that records what it was shown; the
 * last ones use the real Choker, on a fake clock.
 */
import { describe, expect, it } from 'vitest'
import { Choker, OFFER_WEIGHT, type ChokeDecision, type ChokerPeer, type UploadShare } from '../../src/choker/choker.js'
import { ChokeRounds, chokerPeer, SEED_PIECE_QUOTA, swarmChoker, TRIAL_PIECE_QUOTA, type ChokePolicy, type ChokeSession } from '../../src/swarm/chokes.js'

/** A session as the rounds see it: fields set by the test, choke calls and shares recorded. */
class FakeSession implements ChokeSession {
  peerInterested = true
  amInterested = true
  amChoking = true
  peerChoking = true
  connectedAt = 1000
  lastBlockAt = 0
  requestedAt: number | undefined
  downRate = 0
  downWindow = 0
  upRate = 0
  readonly down = { total: 0, rate: () => this.downRate, windowBytes: () => this.downWindow }
  readonly up = { total: 0, rate: () => this.upRate }
  /** 'choke' and 'unchoke' calls that changed something, in order */
  readonly calls: string[] = []
  share: { weight: number, limit: number | undefined } | undefined
  /** how often the view of it was built */
  views = 0

  constructor (readonly remotePeer: string) {}

  oldestRequestAt (): number | undefined {
    this.views++
    return this.requestedAt
  }

  choke (): void {
    if (this.amChoking) return
    this.amChoking = true
    this.calls.push('choke')
  }

  unchoke (): void {
    if (!this.amChoking) return
    this.amChoking = false
    this.calls.push('unchoke')
  }

  setUploadShare (weight: number, limit: number | undefined): void {
    this.share = { weight, limit }
  }
}

const REGULAR: UploadShare = { weight: 1, capped: false }

/** A policy that says what the test tells it to, and records what it was shown. */
class StubPolicy implements ChokePolicy {
  readonly rechokeInterval = 10_000
  readonly offerFraction = 0.1
  admits = false
  decision: ChokeDecision = { unchoked: new Set(), shares: new Map(), optimistic: undefined, trials: new Set() }
  withdraw: string[] = []
  refreshed = new Map<string, UploadShare>()
  turnOver = false
  readonly shares = new Map<string, UploadShare>()
  /** each call: its name, whether we were seeding, and a copy of the peers it was shown */
  readonly seen: Array<{ call: string, seeding?: boolean, peers: ChokerPeer[] }> = []

  admit (peer: ChokerPeer, peers: ChokerPeer[], seeding: boolean): boolean {
    this.seen.push({ call: `admit ${peer.id}`, seeding, peers: copy(peers) })
    return this.admits
  }

  uploadShare (id: string): UploadShare {
    return this.shares.get(id) ?? REGULAR
  }

  rechoke (peers: ChokerPeer[], seeding: boolean): ChokeDecision {
    this.seen.push({ call: 'rechoke', seeding, peers: copy(peers) })
    return this.decision
  }

  review (peers: ChokerPeer[]): string[] {
    this.seen.push({ call: 'review', peers: copy(peers) })
    return this.withdraw
  }

  refreshShares (peers: ChokerPeer[], seeding: boolean): Map<string, UploadShare> {
    this.seen.push({ call: 'refreshShares', seeding, peers: copy(peers) })
    return this.refreshed
  }

  seedTurnOver (peers: ChokerPeer[]): boolean {
    this.seen.push({ call: 'seedTurnOver', peers: copy(peers) })
    return this.turnOver
  }
}

const copy = (peers: ChokerPeer[]): ChokerPeer[] => peers.map(p => ({ ...p }))

interface Harness<P extends ChokePolicy> {
  rounds: ChokeRounds<FakeSession>
  policy: P
  sessions: Map<string, FakeSession>
  add: (...ids: string[]) => FakeSession[]
  setSeeding: (seeding: boolean) => void
}

function setup<P extends ChokePolicy> (policy: P, throttle = { rate: 0, unlimited: true }): Harness<P> {
  const sessions = new Map<string, FakeSession>()
  let seeding = false
  const rounds = new ChokeRounds<FakeSession>({ choker: policy, sessions, seeding: () => seeding, throttle })
  const add = (...ids: string[]): FakeSession[] => ids.map(id => {
    const s = new FakeSession(id)
    sessions.set(id, s)
    return s
  })
  return { rounds, policy, sessions, add, setSeeding: (s) => { seeding = s } }
}

describe('chokerPeer: what the choker is shown of a session', () => {
  it('every field, from the session\'s flags, meters and requests', () => {
    const s = new FakeSession('p')
    Object.assign(s, { peerInterested: true, amInterested: false, amChoking: false, peerChoking: true, connectedAt: 5, lastBlockAt: 9, requestedAt: 7, downRate: 100, downWindow: 2000, upRate: 300 })
    s.down.total = 50_000
    s.up.total = 70_000
    expect(chokerPeer(s)).toEqual({
      id: 'p',
      interested: true,
      downloadRate: 100,
      downloaded: 2000,
      uploadRate: 300,
      uploaded: 70_000,
      downloadedTotal: 50_000,
      connectedAt: 5,
      unchoked: true,
      unchokesUs: false,
      amInterested: false,
      lastBlockAt: 9,
      requestedAt: 7
    })
  })
})

describe('ChokeRounds.rechoke', () => {
  it('unchokes whom the choker picks, with its share, and chokes the others', () => {
    const h = setup(new StubPolicy())
    const [a, b, c] = h.add('a', 'b', 'c')
    c.amChoking = false
    h.policy.decision = { unchoked: new Set(['a', 'b']), shares: new Map([['a', { weight: 2, capped: false }]]), optimistic: 'b', trials: new Set() }
    h.policy.shares.set('b', { weight: 0.5, capped: false })
    h.rounds.rechoke()
    expect([a.calls, b.calls, c.calls]).toEqual([['unchoke'], ['unchoke'], ['choke']])
    expect(a.share).toEqual({ weight: 2, limit: undefined })
    // not in the decision's shares: the choker's current share for it
    expect(b.share).toEqual({ weight: 0.5, limit: undefined })
    expect(c.share).toBeUndefined()
    expect(h.policy.seen.map(x => [x.call, x.seeding, x.peers.map(p => p.id)])).toEqual([['rechoke', false, ['a', 'b', 'c']]])
  })

  it('seeding: the choker is told so', () => {
    const h = setup(new StubPolicy())
    h.add('a')
    h.setSeeding(true)
    h.rounds.rechoke()
    expect(h.policy.seen[0].seeding).toBe(true)
  })

  it('a capped share is limited to the choker\'s offer fraction of a capped uplink', () => {
    const capped = setup(new StubPolicy(), { rate: 50_000, unlimited: false })
    const [a, b] = capped.add('a', 'b')
    capped.policy.decision = { unchoked: new Set(['a', 'b']), shares: new Map([['a', { weight: 0.5, capped: true }], ['b', REGULAR]]), optimistic: 'a', trials: new Set() }
    capped.rounds.rechoke()
    expect(a.share).toEqual({ weight: 0.5, limit: 5_000 })
    expect(b.share).toEqual({ weight: 1, limit: undefined })
    // no cap on the uplink: nothing to take a fraction of
    const free = setup(new StubPolicy())
    const [c] = free.add('c')
    free.policy.decision = { unchoked: new Set(['c']), shares: new Map([['c', { weight: 0.5, capped: true }]]), optimistic: 'c', trials: new Set() }
    free.rounds.rechoke()
    expect(c.share).toEqual({ weight: 0.5, limit: undefined })
  })
})

describe('ChokeRounds.interested', () => {
  it('a peer the choker admits is unchoked at once, with its share', () => {
    const h = setup(new StubPolicy())
    const [a] = h.add('a', 'b')
    h.policy.admits = true
    h.policy.shares.set('a', { weight: 0.5, capped: false })
    h.rounds.interested(a)
    expect(a.calls).toEqual(['unchoke'])
    expect(a.share).toEqual({ weight: 0.5, limit: undefined })
    expect(h.policy.seen.map(x => [x.call, x.peers.map(p => p.id)])).toEqual([['admit a', ['a', 'b']]])
  })

  it('one the choker does not admit waits for the rechoke', () => {
    const h = setup(new StubPolicy())
    const [a] = h.add('a')
    h.rounds.interested(a)
    expect(a.calls).toEqual([])
    expect(a.share).toBeUndefined()
  })

  it('the choker is not asked about a peer that lost interest, or one unchoked already', () => {
    const h = setup(new StubPolicy())
    const [a, b] = h.add('a', 'b')
    h.policy.admits = true
    a.peerInterested = false
    b.amChoking = false
    h.rounds.interested(a)
    h.rounds.interested(b)
    expect(h.policy.seen).toEqual([])
    expect([a.calls, b.calls]).toEqual([[], []])
  })
})

describe('ChokeRounds.tick', () => {
  it('leeching: trials the choker withdraws are choked, and shares are refreshed on the same view', () => {
    const h = setup(new StubPolicy())
    const [a, b, c] = h.add('a', 'b', 'c')
    for (const s of [a, b, c]) s.amChoking = false
    h.policy.withdraw = ['b']
    h.policy.refreshed = new Map([['a', { weight: 1.5, capped: false }], ['c', { weight: 0.5, capped: false }]])
    h.rounds.tick()
    expect([a.calls, b.calls, c.calls]).toEqual([[], ['choke'], []])
    expect([a.share, b.share, c.share]).toEqual([{ weight: 1.5, limit: undefined }, undefined, { weight: 0.5, limit: undefined }])
    expect(h.policy.seen.map(x => x.call)).toEqual(['review', 'refreshShares'])
    // refreshShares saw b choked, in the view built once for the tick
    expect(h.policy.seen[1].peers.map(p => [p.id, p.unchoked])).toEqual([['a', true], ['b', false], ['c', true]])
    expect(h.policy.seen[1].seeding).toBe(false)
    expect([a.views, b.views, c.views]).toEqual([1, 1, 1])
  })

  it('seeding: a seed turn that is over means a rechoke at once', () => {
    const h = setup(new StubPolicy())
    const [a, b] = h.add('a', 'b')
    a.amChoking = false
    h.setSeeding(true)
    h.policy.decision = { unchoked: new Set(['b']), shares: new Map(), optimistic: undefined, trials: new Set() }
    h.rounds.tick()
    expect(h.policy.seen.map(x => x.call)).toEqual(['seedTurnOver'])
    expect([a.calls, b.calls]).toEqual([[], []])
    h.policy.turnOver = true
    h.rounds.tick()
    expect(h.policy.seen.map(x => x.call)).toEqual(['seedTurnOver', 'seedTurnOver', 'rechoke'])
    expect([a.calls, b.calls]).toEqual([['choke'], ['unchoke']])
  })
})

describe('ChokeRounds with the real Choker', () => {
  it('swarmChoker counts the seed turn and the trial quota in pieces; its init has the last word', () => {
    const c = swarmChoker(1000)
    expect(c.seedQuota).toBe(SEED_PIECE_QUOTA * 1000)
    expect(c.trialQuota).toBe(TRIAL_PIECE_QUOTA * 1000)
    expect(swarmChoker(1000, { seedQuota: 7, uploadSlots: 3 })).toMatchObject({ seedQuota: 7, trialQuota: 4000, uploadSlots: 3 })
  })

  it('an interested newcomer gets its trial at once, at an offer\'s share; one that uploads to us keeps a regular slot', () => {
    let t = 100_000
    const h = setup(new Choker({ now: () => t, random: () => 0 }))
    const [newcomer, uploader] = h.add('newcomer', 'uploader')
    h.rounds.interested(newcomer)
    expect(newcomer.calls).toEqual(['unchoke'])
    expect(newcomer.share).toEqual({ weight: OFFER_WEIGHT, limit: undefined })
    uploader.downWindow = 256 * 1024
    uploader.downRate = 20_000
    t += 10_000
    h.rounds.rechoke()
    expect(uploader.calls).toEqual(['unchoke'])
    expect(uploader.share).toEqual({ weight: 1, limit: undefined })
  })
})
