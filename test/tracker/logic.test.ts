import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { announceJson } from '../../tracker/http.js'
import { handleAnnounce, handleScrape, sample } from '../../tracker/logic.js'
import type { AnnounceRequest, LogicOptions } from '../../tracker/logic.js'
import { MemoryPeerStore } from '../../tracker/store.js'

const opts: LogicOptions = { interval: 30, minInterval: 5, peerTtl: 60, random: Math.random }

let seq = 0n

/** each request carries a newer record seq unless `over` says otherwise */
function req (peerId: string, over: Partial<AnnounceRequest> = {}): AnnounceRequest {
  return { manifest: 'm', peerId, multiaddrs: [`/ip4/10.0.0.1/tcp/${peerId.length}`], ip: '10.0.0.1', seq: ++seq, uploaded: 0, downloaded: 0, left: 1, numwant: 50, ...over }
}

describe('tracker logic', () => {
  it('sample returns distinct items, at most n, and tolerates random() === 1', () => {
    const items = [1, 2, 3, 4, 5]
    const s = sample(items, 3, Math.random)
    expect(new Set(s).size).toBe(3)
    expect(s.every(x => items.includes(x))).toBe(true)
    expect(sample(items, 10, () => 0.999999).sort()).toEqual(items)
    expect(sample(items, 5, () => 1).sort()).toEqual(items)
    expect(sample([], 5, Math.random)).toEqual([])
    expect(items).toEqual([1, 2, 3, 4, 5]) // input untouched
  })

  it('is pure given now: expiry depends only on the passed clock', async () => {
    const store = new MemoryPeerStore()
    await handleAnnounce(store, req('a'), 0, opts)
    await handleAnnounce(store, req('b'), 10_000, opts)
    expect((await handleAnnounce(store, req('c'), 60_000, opts)).peers.map(p => p.peerId).sort()).toEqual(['a', 'b'])
    expect((await handleAnnounce(store, req('c'), 60_001, opts)).peers.map(p => p.peerId)).toEqual(['b'])
  })

  it('an expired peer that comes back is a new peer (its completion counts again only if it re-completes)', async () => {
    const store = new MemoryPeerStore()
    await handleAnnounce(store, req('a', { event: 'completed', left: 0 }), 0, opts)
    await handleAnnounce(store, req('a', { event: 'completed', left: 0 }), 1_000, opts)
    expect((await handleScrape(store, [{ key: 'm', manifest: 'm' }], 1_000, opts.peerTtl)).files.m).toEqual({ complete: 1, incomplete: 0, downloaded: 1 })
    await handleAnnounce(store, req('a', { event: 'completed', left: 0 }), 200_000, opts)
    expect((await handleScrape(store, [{ key: 'm', manifest: 'm' }], 200_000, opts.peerTtl)).files.m.downloaded).toBe(2)
  })

  it('scrape keys answers by what the client asked, and a __proto__ key stays data', async () => {
    const store = new MemoryPeerStore()
    await handleAnnounce(store, req('a', { left: 0 }), 0, opts)
    const r = await handleScrape(store, [{ key: '__proto__', manifest: 'm' }], 0, opts.peerTtl)
    expect(Object.getPrototypeOf(r.files)).toBe(Object.prototype)
    expect(Object.keys(r.files)).toEqual(['__proto__'])
  })

  it('announceJson is exactly JSON.stringify of the answer, cached peers or not', () => {
    const peer = fc.record({ peerId: fc.string(), multiaddrs: fc.array(fc.string({ unit: 'binary' }), { maxLength: 3 }) })
    fc.assert(fc.property(
      fc.record({
        interval: fc.double({ min: 0.001, max: 1e6, noNaN: true }),
        minInterval: fc.double({ min: 0, max: 1e6, noNaN: true }),
        complete: fc.nat(),
        incomplete: fc.nat(),
        peers: fc.array(peer, { maxLength: 10 })
      }),
      (answer) => {
        expect(announceJson(answer)).toBe(JSON.stringify(answer))
        expect(announceJson(answer)).toBe(JSON.stringify(answer)) // now from the cache
      }
    ))
  })

  it('answers share one shown object per store entry (its JSON is cached), and a new announce replaces it', async () => {
    const store = new MemoryPeerStore()
    await handleAnnounce(store, req('a'), 0, opts)
    const first = (await handleAnnounce(store, req('b'), 0, opts)).peers[0]
    expect((await handleAnnounce(store, req('c'), 0, opts)).peers.find(p => p.peerId === 'a')).toBe(first)
    await handleAnnounce(store, req('a', { multiaddrs: ['/ip4/10.0.0.1/tcp/9'] }), 0, opts)
    expect((await handleAnnounce(store, req('b'), 0, opts)).peers.find(p => p.peerId === 'a')?.multiaddrs).toEqual(['/ip4/10.0.0.1/tcp/9'])
  })
})
