import { describe, expect, it } from 'vitest'
import { prng } from '../helpers/prng.js'
import { Choker, MIN_RECIPROCATION, OFFER_WEIGHT, type ChokeDecision, type ChokerPeer } from '../../src/choker/choker.js'

const OLD = -1_000_000 // connected long ago
const KiB = 1024
/** the rate window the sessions measure over (RateMeter's 20 s) */
const WINDOW_S = 20

/** A peer; `downloaded` (bytes in the window) follows `downloadRate` unless given. */
function peer (id: string, p: Partial<ChokerPeer> = {}): ChokerPeer {
  const rate = p.downloadRate ?? 0
  return {
    id,
    interested: true,
    downloadRate: rate,
    downloaded: rate * WINDOW_S,
    uploadRate: 0,
    uploaded: 0,
    downloadedTotal: 0,
    connectedAt: OLD,
    unchoked: false,
    unchokesUs: false,
    amInterested: false,
    lastBlockAt: 0,
    ...p
  }
}

/** An honest peer that uploads to us at `kib` KiB/s. */
const uploader = (id: string, kib: number, p: Partial<ChokerPeer> = {}): ChokerPeer => peer(id, { downloadRate: kib * KiB, ...p })

/**
 * The free-rider as an honest leecher sees it (issue 9): capped at 1 KiB/s, it sends one 64 KiB
 * block from its token bucket's burst, then one every 64 s; so in a 20 s window, at best one block.
 */
const freeRider = (p: Partial<ChokerPeer> = {}): ChokerPeer =>
  peer('rider', { downloadRate: 64 * KiB / WINDOW_S, downloaded: 64 * KiB, ...p })

/** A `random` whose draws increase: peers that waited equally long go in the order listed. */
function inOrder (): () => number {
  let n = 0
  return () => ++n / 1e6
}

/** A clock the test moves by hand. */
function clock (start = 0): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms: number) => { t += ms } }
}

/** Applies a decision the way the swarm does: unchoke/choke flags follow it. */
function apply (peers: ChokerPeer[], d: ChokeDecision): void {
  for (const p of peers) p.unchoked = d.unchoked.has(p.id)
}

/** the regular slots: neither the optimistic unchoke nor a trial */
const regularOf = (d: ChokeDecision): string[] => [...d.unchoked].filter(id => id !== d.optimistic && !d.trials.has(id)).sort()

describe('Choker: leeching, regular slots are reciprocation', () => {
  it('unchokes the four interested peers that upload to us fastest, plus one optimistic', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0 })
    const peers = [
      uploader('slow', 10),
      uploader('a', 500),
      uploader('uninterested', 9999, { interested: false }),
      uploader('b', 400),
      uploader('c', 300),
      uploader('d', 200),
      uploader('e', 100)
    ]
    const d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'b', 'c', 'd'])
    expect(['slow', 'e']).toContain(d.optimistic)
    expect(d.unchoked.size).toBe(5)
    expect(d.unchoked.has('uninterested')).toBe(false)
  })

  it('a regular slot needs minReciprocation bytes in the window: two blocks by default', () => {
    expect(MIN_RECIPROCATION).toBe(128 * KiB)
    const choker = new Choker({ now: () => 0, uploadSlots: 2 })
    const at = (downloaded: number): ChokerPeer => peer('p', { downloaded, downloadRate: downloaded / WINDOW_S })
    expect(choker.reciprocates(at(128 * KiB))).toBe(true)
    expect(choker.reciprocates(at(128 * KiB - 1))).toBe(false)
    expect(choker.reciprocates(at(64 * KiB))).toBe(false) // one block: the free-rider's burst
    expect(new Choker({ uploadSlots: 4, minReciprocation: 1 }).reciprocates(at(1))).toBe(true)
    // a young peer is judged on what it sent so far, however high its rate over one second
    expect(choker.reciprocates(peer('young', { downloaded: 64 * KiB, downloadRate: 64 * KiB }))).toBe(false)
  })

  it('a regular slot nobody earns is a trial for a peer never unchoked, until the next rechoke', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = [uploader('a', 300), uploader('b', 200), freeRider(), peer('x'), peer('y')]
    let d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'b'])
    expect([...d.trials]).toEqual(['rider', 'x']) // two slots left, in the order of their lots
    expect(d.optimistic).toBe('y')
    apply(peers, d)
    // nobody reciprocated: every one has had its trial; the slots stay empty, the optimistic
    // unchoke keeps its 30 s
    c.advance(10_000)
    d = choker.rechoke(peers, false)
    expect(d.trials.size).toBe(0)
    expect(d.unchoked).toEqual(new Set(['a', 'b', 'y']))
    apply(peers, d)
    // x reciprocated meanwhile: a regular slot; the free-rider did not
    c.advance(10_000)
    Object.assign(peers[3], { downloadRate: 50 * KiB, downloaded: 1000 * KiB })
    d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'b', 'x'])
    expect(d.unchoked.has('rider')).toBe(false)
  })

  it('one trial per peer, a peer unchoked before has had it; none for the snubbing or when seeding', () => {
    const c = clock(1_000_000)
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const was = peer('was', { unchoked: true })
    const snubber = peer('snubber', { unchokesUs: true, amInterested: true, lastBlockAt: 1_000_000 - 61_000 })
    const peers = [was, snubber, peer('new')]
    const d = choker.rechoke(peers, false)
    expect([...d.trials]).toEqual(['new'])
    expect(new Choker({ uploadSlots: 4, now: c.now }).rechoke([peer('s1'), peer('s2')], true).trials.size).toBe(0)
  })

  it("the free-rider's inputs: no regular slot kept on a tie at zero, nor won with one block", () => {
    // issue 9 as one honest leecher saw it: two peers upload to it, the rest do not (yet); the
    // free-rider got a free slot when it became interested, and has sent one block lately
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now })
    const rider = freeRider({ unchoked: true })
    const peers = [uploader('a', 400), uploader('b', 300), rider, peer('h1'), peer('h2'), peer('h3')]
    for (let round = 0; round < 12; round++) { // two minutes of rechokes
      const d = choker.rechoke(peers, false)
      expect(regularOf(d)).toEqual(['a', 'b'])
      apply(peers, d)
      // the block ages out of the window; zero like the others then
      if (round === 2) { rider.downloaded = 0; rider.downloadRate = 0 }
      c.advance(choker.rechokeInterval)
    }
  })

  it('a peer that drops below the threshold loses its regular slot to one above it', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, uploadSlots: 2 })
    const peers = [uploader('a', 400), uploader('b', 300), peer('c', { downloaded: 200 * KiB, downloadRate: 10 * KiB })]
    let d = choker.rechoke(peers, false)
    apply(peers, d)
    expect(regularOf(d)).toEqual(['a', 'b'])
    c.advance(10_000)
    peers[1].downloaded = 100 * KiB // b stopped uploading: what is left in its window is not enough
    peers[1].downloadRate = 5 * KiB
    d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'c'])
  })

  it('among equal uploaders keeps whoever is unchoked, then orders by id (deterministic)', () => {
    const choker = new Choker({ now: () => 0, uploadSlots: 2 })
    const peers = [uploader('c', 100), uploader('b', 100, { unchoked: true }), uploader('a', 100), uploader('z', 200)]
    expect(regularOf(choker.rechoke(peers, false))).toEqual(['b', 'z'])
    const fresh = [uploader('c', 100), uploader('b', 100), uploader('a', 100), uploader('z', 200)]
    expect(regularOf(new Choker({ now: () => 0, uploadSlots: 2 }).rechoke(fresh, false))).toEqual(['a', 'z'])
  })

  it('honours uploadSlots and unchokes nobody uninterested', () => {
    const choker = new Choker({ uploadSlots: 2, now: () => 0 })
    const peers = [uploader('a', 300), uploader('b', 200), uploader('c', 100), uploader('x', 900, { interested: false })]
    const d = choker.rechoke(peers, false)
    expect([...d.unchoked].sort()).toEqual(['a', 'b', 'c'])
    expect(d.optimistic).toBe('c')
    expect(choker.rechoke([peer('x', { interested: false })], false)).toEqual({ unchoked: new Set(), shares: new Map(), optimistic: undefined, trials: new Set() })
  })
})

describe('Choker: the optimistic unchoke takes turns', () => {
  it('keeps the optimistic unchoke for 30 s, then rotates it', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = ['a', 'b', 'c', 'd'].map((id, i) => uploader(id, 1000 - i)).concat(['e', 'f', 'g', 'h'].map(id => peer(id)))
    const first = choker.rechoke(peers, false)
    apply(peers, first)
    expect(first.optimistic).toBe('e')
    for (const t of [10_000, 10_000, 9_999]) {
      c.advance(t)
      const d = choker.rechoke(peers, false)
      apply(peers, d)
      expect(d.optimistic).toBe('e')
    }
    c.advance(1) // 30 s since it was chosen
    const rotated = choker.rechoke(peers, false)
    expect(rotated.optimistic).toBe('f')
    expect(choker.optimisticPeer).toBe('f')
  })

  it('gives each waiting peer its turn, the longest-waiting since its last turn first', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = [...['a', 'b', 'c', 'd'].map(id => uploader(id, 100)), peer('e'), peer('f'), freeRider()]
    const turns: string[] = []
    for (let round = 0; round < 27; round++) { // 9 optimistic periods
      const d = choker.rechoke(peers, false)
      apply(peers, d)
      if (round % 3 === 0) turns.push(d.optimistic as string)
      c.advance(10_000)
    }
    // nobody had a turn yet: in the order of their lots, then strictly in turn
    expect(turns).toEqual(['e', 'f', 'rider', 'e', 'f', 'rider', 'e', 'f', 'rider'])
  })

  it('a newcomer (never had a turn) goes before peers that have had theirs', () => {
    const c = clock(100_000)
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = [...['a', 'b', 'c', 'd'].map(id => uploader(id, 100)), peer('x', { connectedAt: 0 }), peer('y', { connectedAt: 0 })]
    expect(choker.rechoke(peers, false).optimistic).toBe('x')
    c.advance(30_000)
    expect(choker.rechoke(peers, false).optimistic).toBe('y')
    c.advance(30_000)
    // two newcomers join: both before x, whose last turn was a minute ago
    peers.push(peer('new', { connectedAt: c.now() - 5_000 }), peer('late', { connectedAt: c.now() - 1_000 }))
    expect(choker.rechoke(peers, false).optimistic).toBe('new')
    c.advance(30_000)
    expect(choker.rechoke(peers, false).optimistic).toBe('late')
    c.advance(30_000)
    expect(choker.rechoke(peers, false).optimistic).toBe('x')
  })

  it('is deterministic: the same inputs and clock give the same decisions', () => {
    const run = (): Array<string | undefined> => {
      const c = clock()
      const choker = new Choker({ now: c.now, uploadSlots: 2, random: prng(5) })
      const peers = ['p', 'q', 'r', 's', 't'].map((id, i) => peer(id, { connectedAt: -i }))
      const out: Array<string | undefined> = []
      for (let round = 0; round < 20; round++) {
        const d = choker.rechoke(peers, false)
        apply(peers, d)
        out.push(d.optimistic)
        c.advance(10_000)
      }
      return out
    }
    expect(run()).toEqual(run())
  })

  it('picks a new optimistic at once when the current one leaves or loses interest', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = [...['a', 'b', 'c', 'd'].map(id => uploader(id, 100)), peer('e'), peer('f'), peer('g')]
    expect(choker.rechoke(peers, false).optimistic).toBe('e')
    c.advance(10_000)
    const withoutE = peers.filter(p => p.id !== 'e')
    expect(choker.rechoke(withoutE, false).optimistic).toBe('f')
    c.advance(10_000)
    withoutE.find(p => p.id === 'f')!.interested = false
    expect(choker.rechoke(withoutE, false).optimistic).toBe('g')
  })

  it('picks a new optimistic when the current one earns a regular slot', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const peers = [...['a', 'b', 'c', 'd'].map((id, i) => uploader(id, 100 - i)), peer('e'), peer('f')]
    expect(choker.rechoke(peers, false).optimistic).toBe('e')
    c.advance(10_000)
    Object.assign(peers[4], { downloadRate: 1000 * KiB, downloaded: 20_000 * KiB }) // e reciprocated
    const d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'b', 'c', 'e'])
    expect(d.optimistic).toBe('f') // d dropped out of the top four; it and f never had a turn, f drew the lower lot
  })
})

describe('Choker: admit (a free slot between rechokes)', () => {
  it('admits a peer that uploads to us into a free slot', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0 })
    const peers = [uploader('a', 100, { unchoked: true }), uploader('b', 100)]
    expect(choker.admit(peers[1], peers, false)).toBe(true)
    expect(choker.optimisticPeer).toBeUndefined() // a regular-to-be, not the optimistic
  })

  it('a peer never unchoked gets its trial at once; the free-rider loses it at the next rechoke', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const rider = freeRider()
    const peers = [uploader('a', 100, { unchoked: true }), peer('x', { unchoked: true }), rider]
    expect(choker.admit(rider, peers, false)).toBe(true)
    expect(choker.optimisticPeer).toBeUndefined() // a trial, not the optimistic unchoke
    rider.unchoked = true
    c.advance(5_000)
    const d = choker.rechoke(peers, false)
    expect(d.unchoked).toEqual(new Set(['a', 'x'])) // x: the optimistic unchoke; the trial is over
    expect(d.trials.size).toBe(0)
    apply(peers, d)
    // it loses interest and regains it between rechokes: free slots, but no second trial
    expect(choker.freeSlot(peers)).toBe(true)
    expect(choker.admit(rider, peers, false)).toBe(false)
  })

  it('a tried non-uploader never, even with the optimistic slot vacant: it waits for its turn', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const rider = freeRider({ unchoked: true })
    const x = peer('x', { unchoked: true })
    const peers = [uploader('a', 100, { unchoked: true }), rider, x]
    let d = choker.rechoke(peers, false) // both seen unchoked: tried; rider drew the optimistic turn
    apply(peers, d)
    expect(d.unchoked).toEqual(new Set(['a', 'rider']))
    expect(choker.admit(x, peers, false)).toBe(false)
    rider.interested = false // it leaves the optimistic slot vacant between rechokes
    expect(choker.admit(x, peers, false)).toBe(false)
    c.advance(10_000)
    d = choker.rechoke(peers, false)
    expect(d.optimistic).toBe('x') // at the rechoke
  })

  it('never past uploadSlots + 1 unchoked, but for one newcomer slot; never the uninterested or the unchoked', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, uploadSlots: 2 })
    const full = [uploader('a', 100, { unchoked: true }), uploader('b', 100, { unchoked: true }), peer('o', { unchoked: true })]
    const tried = uploader('t', 500)
    choker.rechoke([...full, { ...tried, unchoked: true }], false) // t has been unchoked before
    expect(choker.admit(tried, [...full, tried], false)).toBe(false) // full, and t had its trial
    expect(choker.admit(tried, [...full.slice(1), tried], false)).toBe(true) // a free slot
    // full: a peer never unchoked still gets its trial at once, in the newcomer slot; one at a time
    const u = peer('u')
    const v = peer('v')
    expect(choker.admit(u, [...full, u, v], false)).toBe(true)
    u.unchoked = true
    expect(choker.admit(v, [...full, u, v], false)).toBe(false)
    // the newcomer slot is free again when its peer is choked (at the latest, at the rechoke)
    u.unchoked = false
    expect(choker.admit(v, [...full, u, v], false)).toBe(true)
    expect(choker.admit({ ...tried, interested: false }, [tried], false)).toBe(false)
    expect(choker.admit({ ...tried, unchoked: true }, [tried], false)).toBe(false)
  })

  it('seeding: whoever asks first gets a free slot (the seed rotation takes it back in turn)', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0 })
    const peers = [peer('a', { unchoked: true }), peer('b', { unchoked: true }), peer('c')]
    expect(choker.admit(peers[2], peers, true)).toBe(true)
    expect(choker.optimisticPeer).toBeUndefined()
  })
})

describe('Choker: anti-snubbing', () => {
  const snubbable = (lastBlockAt: number): Partial<ChokerPeer> => ({ unchokesUs: true, amInterested: true, lastBlockAt })

  it('isSnubbed: unchokes us, we want data, nothing for over a minute', () => {
    const c = clock(100_000)
    const choker = new Choker({ uploadSlots: 4, now: c.now })
    expect(choker.isSnubbed(peer('p', snubbable(40_000)))).toBe(false) // exactly 60 s
    expect(choker.isSnubbed(peer('p', snubbable(39_999)))).toBe(true)
    expect(choker.isSnubbed(peer('p', { ...snubbable(0), unchokesUs: false }))).toBe(false)
    expect(choker.isSnubbed(peer('p', { ...snubbable(0), amInterested: false }))).toBe(false)
    // never sent a block: measured from when we connected, not from time 0
    expect(choker.isSnubbed(peer('p', { ...snubbable(0), connectedAt: 90_000 }))).toBe(false)
    expect(choker.isSnubbed(peer('p', { ...snubbable(0), connectedAt: 30_000 }))).toBe(true)
  })

  it('snubbed peers lose their regular slot and may only be the optimistic unchoke', () => {
    const c = clock(1_000_000)
    const choker = new Choker({ uploadSlots: 4, now: c.now })
    const peers = [
      uploader('snubber', 5000, snubbable(1_000_000 - 61_000)),
      uploader('a', 400),
      uploader('b', 300),
      uploader('c', 200),
      uploader('d', 100),
      uploader('e', 50, { interested: false })
    ]
    expect(peers.filter(p => choker.isSnubbed(p)).map(p => p.id)).toEqual(['snubber'])
    const d = choker.rechoke(peers, false)
    expect([...d.unchoked].filter(id => id !== d.optimistic).sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(d.optimistic).toBe('snubber') // the only other candidate
    const alone = new Choker({ uploadSlots: 4, now: c.now }).rechoke([peers[0]], false)
    expect(alone.optimistic).toBe('snubber')
    expect(alone.unchoked).toEqual(new Set(['snubber']))
  })
})

describe('Choker: seeding', () => {
  it('prefers the peers we upload to fastest', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0, random: inOrder() })
    const peers = [
      peer('a', { uploadRate: 10, unchoked: true, downloadRate: 9999 }),
      peer('b', { uploadRate: 500, unchoked: true }),
      peer('c', { uploadRate: 400, unchoked: true }),
      peer('d', { uploadRate: 300, unchoked: true }),
      peer('e', { uploadRate: 200, unchoked: true }),
      peer('f', { uploadRate: 100, unchoked: true })
    ]
    const d = choker.rechoke(peers, true)
    expect([...d.unchoked].filter(id => id !== d.optimistic).sort()).toEqual(['b', 'c', 'd', 'e'])
    expect(d.optimistic).toBe('a')
  })

  it('rotates slots so every interested leecher is served over several rounds', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: prng(3) })
    const peers = Array.from({ length: 12 }, (_, i) => peer(`l${i}`, { connectedAt: 0 }))
    peers.push(peer('idle', { interested: false }))
    const served = new Map<string, number>() // rounds spent unchoked
    for (let round = 0; round < 12; round++) { // two minutes of rechokes
      const d = choker.rechoke(peers, true)
      expect(d.unchoked.size).toBeLessThanOrEqual(5)
      expect(d.unchoked.has('idle')).toBe(false)
      apply(peers, d)
      // whoever we upload to gets a rate; a fast one would otherwise keep its slot forever
      for (const p of peers) p.uploadRate = p.unchoked ? 1000 + Number(p.id.slice(1)) : 0
      for (const id of d.unchoked) served.set(id, (served.get(id) ?? 0) + 1)
      c.advance(choker.rechokeInterval)
    }
    expect(served.size).toBe(12)
    // fair-ish: nobody hogs a slot for the whole two minutes
    for (const n of served.values()) expect(n).toBeLessThan(8)
  })

  it('a peer unchoked by freeSlot between rounds counts from when it was first seen unchoked', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, uploadSlots: 1, random: inOrder() })
    const a = peer('a', { unchoked: true, uploadRate: 100 }) // unchoked outside rechoke
    const b = peer('b')
    const peers = [a, b]
    let d = choker.rechoke(peers, true)
    expect(d.unchoked).toEqual(new Set(['a', 'b'])) // a regular, b optimistic
    apply(peers, d)
    c.advance(30_000)
    // both have been served for 30 s, but nobody else is waiting: both stay unchoked
    d = choker.rechoke(peers, true)
    expect(d.unchoked).toEqual(new Set(['a', 'b']))
    expect(d.optimistic).toBe('b')
    const c2 = new Choker({ now: c.now, uploadSlots: 1, random: inOrder() })
    const x = peer('x', { unchoked: true, uploadRate: 100 })
    const y = peer('y', { unchoked: false })
    const z = peer('z', { unchoked: false })
    c2.rechoke([x, y, z], true) // x regular, y optimistic; z waits
    x.unchoked = true; y.unchoked = true
    c.advance(30_000)
    const after = c2.rechoke([x, y, z], true)
    // x's slot expired and z waited longest: z takes the regular slot, x yields
    expect(after.unchoked).toEqual(new Set(['z', 'x']))
    expect(after.optimistic).toBe('x') // the optimistic rotates away from y
  })
})

describe('Choker: freeSlot', () => {
  it('is true while fewer than uploadSlots + 1 peers are unchoked', () => {
    const choker = new Choker({ uploadSlots: 4 })
    const peers = Array.from({ length: 8 }, (_, i) => peer(`p${i}`))
    expect(choker.freeSlot(peers)).toBe(true)
    for (let i = 0; i < 4; i++) peers[i].unchoked = true
    expect(choker.freeSlot(peers)).toBe(true)
    peers[4].unchoked = true
    expect(choker.freeSlot(peers)).toBe(false)
    expect(new Choker({ uploadSlots: 5 }).freeSlot(peers)).toBe(true)
  })

  it('exposes the intervals with their defaults', () => {
    expect(new Choker().uploadSlots).toBe(8) // libtorrent's unchoke_slots_limit
    expect(new Choker().rechokeInterval).toBe(10_000)
    expect(new Choker({ uploadSlots: 4, rechokeInterval: 5_000 }).rechokeInterval).toBe(5_000)
  })
})

describe('Choker: upload shares (PropShare) and offers', () => {
  it('leeching: regular slots share the uplink in proportion to what each sent us, averaging 1', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0, random: inOrder() })
    const peers = [uploader('a', 400), uploader('b', 200), uploader('c', 100), uploader('d', 100), peer('n')]
    const d = choker.rechoke(peers, false)
    expect(regularOf(d)).toEqual(['a', 'b', 'c', 'd'])
    expect(d.shares.get('a')).toEqual({ weight: 2, capped: false })
    expect(d.shares.get('b')).toEqual({ weight: 1, capped: false })
    expect(d.shares.get('c')).toEqual({ weight: 0.5, capped: false })
    // the optimistic unchoke: half an average slot (capped only once it has declined an offer)
    expect(d.optimistic).toBe('n')
    expect(d.shares.get('n')).toEqual({ weight: OFFER_WEIGHT, capped: false })
    expect(choker.uploadShare('n')).toEqual({ weight: OFFER_WEIGHT, capped: false })
    expect(choker.offerFraction).toBeCloseTo(OFFER_WEIGHT / (4 + OFFER_WEIGHT))
    // between rechokes the shares follow what each sends us
    peers[3].downloaded *= 5
    for (const p of peers) p.unchoked = d.unchoked.has(p.id)
    const now = choker.refreshShares(peers, false)
    expect(now.get('d')?.weight).toBeCloseTo(4 * 500 / 1200)
    expect(now.get('n')).toEqual({ weight: OFFER_WEIGHT, capped: false })
  })

  it('a trial weighs half an average slot and is not capped; seeding, every peer alike', () => {
    const choker = new Choker({ uploadSlots: 4, now: () => 0, random: inOrder() })
    const peers = [uploader('a', 100), peer('x'), peer('y')]
    const d = choker.rechoke(peers, false)
    for (const id of d.trials) expect(d.shares.get(id)).toEqual({ weight: OFFER_WEIGHT, capped: false })
    expect(d.trials.size).toBeGreaterThan(0)
    const seed = new Choker({ uploadSlots: 4, now: () => 0 }).rechoke([peer('p'), peer('q', { uploadRate: 5000 })], true)
    for (const id of seed.unchoked) expect(seed.shares.get(id)).toEqual({ weight: 1, capped: false })
  })

  it('the optimistic turn of a peer with pieces we want that sends nothing back ends after one rechoke interval', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder() })
    const rider = freeRider({ amInterested: true, unchokesUs: true })
    const peers = [...['a', 'b', 'c', 'd'].map(id => uploader(id, 100)), rider, peer('e')]
    let d = choker.rechoke(peers, false)
    apply(peers, d)
    expect(d.optimistic).toBe('rider')
    c.advance(10_000)
    d = choker.rechoke(peers, false)
    expect(d.optimistic).toBe('e') // declined: the turn passes on
    apply(peers, d)
    // a peer we want nothing from (a newcomer with no pieces yet) keeps its whole 30 s
    c.advance(10_000)
    d = choker.rechoke(peers, false)
    apply(peers, d)
    expect(d.optimistic).toBe('e')
    // the free-rider sat out an optimistic interval; its next turn is capped
    c.advance(20_000)
    d = choker.rechoke(peers, false)
    expect(d.optimistic).toBe('rider')
    expect(d.shares.get('rider')).toEqual({ weight: OFFER_WEIGHT, capped: true })
  })
})

describe('Choker: seeding after leeching remembers who refused to trade', () => {
  it('a peer that declined our offer while we leeched gets a capped half share once we seed, unless it sent us something since', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder(), trialGrace: 3_000 })
    const rider = peer('rider', { amInterested: true, unchokesUs: true })
    const late = peer('late', { amInterested: true, unchokesUs: true })
    const honest = uploader('a', 100, { unchoked: true, downloadedTotal: 4 * MIN_RECIPROCATION })
    const peers = [honest, rider, late]
    for (const p of [rider, late]) {
      expect(choker.admit(p, peers, false)).toBe(true)
      p.unchoked = true
      p.requestedAt = 0
    }
    c.advance(3_000)
    expect(choker.review(peers).sort()).toEqual(['late', 'rider'])
    // `late` answered afterwards (its slots were full); the rider never does
    late.downloadedTotal = MIN_RECIPROCATION
    // we complete: everyone is served in turn, the rider at half a share
    c.advance(1_000)
    const d = choker.rechoke(peers.map(p => ({ ...p, amInterested: false })), true)
    expect([...d.unchoked].sort()).toEqual(['a', 'late', 'rider'])
    expect(d.shares.get('rider')).toEqual({ weight: OFFER_WEIGHT, capped: true })
    expect(d.shares.get('late')).toEqual({ weight: 1, capped: false })
    expect(d.shares.get('a')).toEqual({ weight: 1, capped: false })
    expect(choker.refreshShares(peers.map(p => ({ ...p, unchoked: true })), true).get('rider')?.weight).toBe(OFFER_WEIGHT)
  })
})

describe('Choker: review (trials between rechokes)', () => {
  it('withdraws a trial whose peer leaves our requests unanswered for trialGrace', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder(), trialGrace: 3_000 })
    const rider = peer('rider', { amInterested: true, unchokesUs: true })
    const peers = [uploader('a', 100, { unchoked: true }), rider]
    expect(choker.admit(rider, peers, false)).toBe(true)
    rider.unchoked = true
    rider.requestedAt = 0
    rider.lastBlockAt = 0
    c.advance(2_999)
    expect(choker.review(peers)).toEqual([])
    c.advance(1)
    expect(choker.review(peers)).toEqual(['rider'])
    expect(choker.review(peers)).toEqual([]) // once
  })

  it('keeps the trial of a peer that chokes us (its slots may be full) or that sends', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder(), trialGrace: 3_000 })
    const busy = peer('busy', { amInterested: true }) // chokes us: no requests of ours wait on it
    const honest = peer('honest', { amInterested: true, unchokesUs: true })
    const peers = [busy, honest]
    for (const p of peers) { expect(choker.admit(p, peers, false)).toBe(true); p.unchoked = true }
    c.advance(3_000)
    honest.requestedAt = 2_000 // answered the older ones: only a recent request waits
    honest.lastBlockAt = 2_900
    expect(choker.review(peers)).toEqual([])
  })

  it('withdraws a trial at its quota unless the peer sent minReciprocation back', () => {
    const c = clock()
    const choker = new Choker({ uploadSlots: 4, now: c.now, random: inOrder(), trialQuota: 1_000_000 })
    const taker = peer('taker')
    const trader = peer('trader')
    const peers = [taker, trader]
    for (const p of peers) { expect(choker.admit(p, peers, false)).toBe(true); p.unchoked = true }
    taker.uploaded = 1_000_000
    trader.uploaded = 1_000_000
    trader.downloaded = MIN_RECIPROCATION
    expect(choker.review(peers)).toEqual([]) // not before it has had trialGrace to answer
    c.advance(choker.trialGrace)
    expect(choker.review(peers)).toEqual(['taker'])
  })
})

describe('Choker: seed quota', () => {
  it('a leecher yields its seed slot to a waiting one after seedQuota bytes, before 30 s', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, uploadSlots: 1, seedQuota: 1_000_000 })
    const a = peer('a', { uploadRate: 100 })
    const b = peer('b')
    const peers = [a, b]
    let d = choker.rechoke(peers, true)
    apply(peers, d)
    const first = regularOf(d)[0]
    const holder = first === 'a' ? a : b
    c.advance(10_000)
    d = choker.rechoke(peers, true)
    expect(regularOf(d)).toEqual([first]) // under its quota, within 30 s: keeps it
    holder.uploaded = 1_000_000
    c.advance(10_000)
    d = choker.rechoke(peers, true)
    expect(regularOf(d)).toEqual([first === 'a' ? 'b' : 'a'])
  })


  it('seedTurnOver: a turn used up while a leecher waits calls for a rechoke now', () => {
    const choker = new Choker({ now: () => 0, uploadSlots: 1, seedQuota: 1_000_000, random: inOrder() })
    const peers = [peer('a', { uploadRate: 100 }), peer('b'), peer('c')]
    const d = choker.rechoke(peers, true)
    apply(peers, d)
    expect(d.unchoked.size).toBe(2) // one regular slot and the optimistic unchoke: one waits
    expect(choker.seedTurnOver(peers)).toBe(false)
    const regular = peers.find(p => regularOf(d).includes(p.id)) as ChokerPeer
    regular.uploaded = 1_000_000
    expect(choker.seedTurnOver(peers)).toBe(true)
    for (const p of peers) p.interested = p.unchoked // nobody waits: no hurry
    expect(choker.seedTurnOver(peers)).toBe(false)
  })
})
