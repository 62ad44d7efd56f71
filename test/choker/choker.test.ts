import { describe, expect, it } from 'vitest'
import { Choker, type ChokeDecision, type ChokerPeer } from '../../src/choker/choker.js'
import { prng } from '../helpers/prng.js'

const OLD = -1_000_000 // connected long ago: not a newcomer

function peer (id: string, p: Partial<ChokerPeer> = {}): ChokerPeer {
  return {
    id,
    interested: true,
    downloadRate: 0,
    uploadRate: 0,
    connectedAt: OLD,
    unchoked: false,
    unchokesUs: false,
    amInterested: false,
    lastBlockAt: 0,
    ...p
  }
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


describe('Choker: leeching', () => {
  it('unchokes the four interested peers with the best download rate, plus one optimistic', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, random: () => 0 })
    const peers = [
      peer('slow', { downloadRate: 10 }),
      peer('a', { downloadRate: 500 }),
      peer('uninterested', { downloadRate: 9999, interested: false }),
      peer('b', { downloadRate: 400 }),
      peer('c', { downloadRate: 300 }),
      peer('d', { downloadRate: 200 }),
      peer('e', { downloadRate: 100 })
    ]
    const d = choker.rechoke(peers, false)
    const regular = [...d.unchoked].filter(id => id !== d.optimistic).sort()
    expect(regular).toEqual(['a', 'b', 'c', 'd'])
    expect(['slow', 'e']).toContain(d.optimistic)
    expect(d.unchoked.size).toBe(5)
    expect(d.unchoked.has('uninterested')).toBe(false)
    expect(d.snubbed.size).toBe(0)
  })

  it('honours uploadSlots and unchokes nobody uninterested', () => {
    const choker = new Choker({ uploadSlots: 2, now: () => 0, random: () => 0 })
    const peers = [peer('a', { downloadRate: 3 }), peer('b', { downloadRate: 2 }), peer('c', { downloadRate: 1 }), peer('x', { interested: false })]
    const d = choker.rechoke(peers, false)
    expect([...d.unchoked].sort()).toEqual(['a', 'b', 'c'])
    expect(d.optimistic).toBe('c')
    expect(choker.rechoke([peer('x', { interested: false })], false)).toEqual({ unchoked: new Set(), optimistic: undefined, snubbed: new Set() })
  })

  it('keeps the optimistic unchoke for 30 s, then rotates it', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, random: prng(7) })
    const peers = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((id, i) => peer(id, { downloadRate: 1000 - i }))
    const first = choker.rechoke(peers, false)
    apply(peers, first)
    expect(['e', 'f', 'g', 'h']).toContain(first.optimistic)
    for (const t of [10_000, 10_000, 9_999]) {
      c.advance(t)
      const d = choker.rechoke(peers, false)
      apply(peers, d)
      expect(d.optimistic).toBe(first.optimistic)
    }
    c.advance(1) // 30 s since it was chosen
    const rotated = choker.rechoke(peers, false)
    expect(rotated.optimistic).not.toBe(first.optimistic)
    expect(['e', 'f', 'g', 'h']).toContain(rotated.optimistic)
    expect(choker.optimisticPeer).toBe(rotated.optimistic)
  })

  it('rotates the optimistic unchoke through every candidate over time', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, random: prng(1) })
    const peers = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id, i) => peer(id, { downloadRate: 100 - i }))
    const seen = new Set<string>()
    for (let round = 0; round < 60; round++) {
      const d = choker.rechoke(peers, false)
      apply(peers, d)
      if (d.optimistic !== undefined) seen.add(d.optimistic)
      c.advance(10_000)
    }
    expect([...seen].sort()).toEqual(['e', 'f', 'g'])
  })

  it('picks a new optimistic at once when the current one leaves or loses interest', () => {
    const c = clock()
    const choker = new Choker({ now: c.now, random: () => 0 })
    const peers = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id, i) => peer(id, { downloadRate: 100 - i }))
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
    const choker = new Choker({ now: c.now, random: () => 0 })
    const peers = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => peer(id, { downloadRate: 100 - i }))
    expect(choker.rechoke(peers, false).optimistic).toBe('e')
    c.advance(10_000)
    peers[4].downloadRate = 1000 // e reciprocated: it now ranks first
    const d = choker.rechoke(peers, false)
    expect(d.unchoked.has('e')).toBe(true)
    expect(d.optimistic).toBe('d') // d dropped out of the top four; it is the only candidate left besides f
  })

  it('favours newcomers 3:1 for the optimistic unchoke (injected random)', () => {
    // pool order old1, new, old2: weights 1, 3, 1 over a total of 5
    const peers = (): ChokerPeer[] => [
      ...['a', 'b', 'c', 'd'].map(id => peer(id, { downloadRate: 100 })),
      peer('old1'),
      peer('new', { connectedAt: 50_000 }),
      peer('old2')
    ]
    const pick = (r: number): string | undefined =>
      new Choker({ now: () => 60_000, random: () => r }).rechoke(peers(), false).optimistic
    expect(pick(0)).toBe('old1')
    expect(pick(0.19)).toBe('old1')
    expect(pick(0.21)).toBe('new')
    expect(pick(0.79)).toBe('new')
    expect(pick(0.81)).toBe('old2')
    expect(pick(0.9999999)).toBe('old2')
  })

  it('favours newcomers about 3:1 (statistically)', () => {
    const random = prng(12345)
    const counts = new Map<string, number>()
    const trials = 6000
    for (let i = 0; i < trials; i++) {
      const choker = new Choker({ now: () => 100_000, random })
      const peers = [
        ...['a', 'b', 'c', 'd'].map(id => peer(id, { downloadRate: 100 })),
        peer('old1'), peer('old2'), peer('old3'),
        peer('new', { connectedAt: 90_000 }) // connected 10 s ago
      ]
      const o = choker.rechoke(peers, false).optimistic as string
      counts.set(o, (counts.get(o) ?? 0) + 1)
    }
    // expected: new 3/6, each old 1/6
    const share = (id: string): number => (counts.get(id) ?? 0) / trials
    expect(share('new')).toBeGreaterThan(0.45)
    expect(share('new')).toBeLessThan(0.55)
    for (const id of ['old1', 'old2', 'old3']) {
      expect(share(id)).toBeGreaterThan(0.13)
      expect(share(id)).toBeLessThan(0.2)
    }
  })

  it('a peer connected longer than newcomerWindow is no newcomer', () => {
    const peers = [
      ...['a', 'b', 'c', 'd'].map(id => peer(id, { downloadRate: 100 })),
      peer('x', { connectedAt: 0 }),
      peer('y', { connectedAt: 0 })
    ]
    // at 60 s neither is a newcomer: equal weights, 0.49 -> first half -> x
    expect(new Choker({ now: () => 60_000, random: () => 0.49 }).rechoke(peers, false).optimistic).toBe('x')
    // at 59.999 s both are newcomers: still equal
    expect(new Choker({ now: () => 59_999, random: () => 0.51 }).rechoke(peers, false).optimistic).toBe('y')
  })
})

describe('Choker: anti-snubbing', () => {
  const snubbable = (lastBlockAt: number): Partial<ChokerPeer> => ({ unchokesUs: true, amInterested: true, lastBlockAt })

  it('isSnubbed: unchokes us, we want data, nothing for over a minute', () => {
    const c = clock(100_000)
    const choker = new Choker({ now: c.now })
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
    const choker = new Choker({ now: c.now, random: () => 0 })
    const peers = [
      peer('snubber', { downloadRate: 5000, ...snubbable(1_000_000 - 61_000) }),
      peer('a', { downloadRate: 400 }),
      peer('b', { downloadRate: 300 }),
      peer('c', { downloadRate: 200 }),
      peer('d', { downloadRate: 100 }),
      peer('e', { downloadRate: 50 })
    ]
    const d = choker.rechoke(peers, false)
    expect([...d.snubbed]).toEqual(['snubber'])
    expect([...d.unchoked].filter(id => id !== d.optimistic).sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(d.optimistic).toBe('snubber') // first in the pool with random () => 0
    const alone = new Choker({ now: c.now, random: () => 0 }).rechoke([peers[0]], false)
    expect(alone.optimistic).toBe('snubber')
    expect(alone.unchoked).toEqual(new Set(['snubber']))
  })
})

describe('Choker: seeding', () => {
  it('prefers the peers we upload to fastest', () => {
    const choker = new Choker({ now: () => 0, random: () => 0 })
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
    const choker = new Choker({ now: c.now, random: prng(3) })
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
    const choker = new Choker({ now: c.now, random: () => 0, uploadSlots: 1 })
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
    const c2 = new Choker({ now: c.now, random: () => 0, uploadSlots: 1 })
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
    const choker = new Choker()
    const peers = Array.from({ length: 8 }, (_, i) => peer(`p${i}`))
    expect(choker.freeSlot(peers)).toBe(true)
    for (let i = 0; i < 4; i++) peers[i].unchoked = true
    expect(choker.freeSlot(peers)).toBe(true)
    peers[4].unchoked = true
    expect(choker.freeSlot(peers)).toBe(false)
    expect(new Choker({ uploadSlots: 5 }).freeSlot(peers)).toBe(true)
  })

  it('exposes the intervals with their defaults', () => {
    expect(new Choker().rechokeInterval).toBe(10_000)
    expect(new Choker({ rechokeInterval: 5_000 }).rechokeInterval).toBe(5_000)
  })
})
