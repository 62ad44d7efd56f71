/**
 * PeerBook on a fake clock: each peer once with its first source, our own id refused, the bound
 * and which peer goes first, what `add` passes on, peers by source, and the round trip through
 * the peer cache (reached peers saved, loaded by the next run's book as `cache`).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MAX_KNOWN_ADDRS, MAX_KNOWN_PEERS, PeerBook } from '../../src/discovery/peer-book.js'
import { PeerCache } from '../../src/discovery/peer-cache.js'
import type { PeerAddress } from '../../src/discovery/types.js'

let ids: string[] = []
let self: string
beforeAll(async () => {
  // real ids only where the peer cache reads them back; the book itself takes ids as given
  const gen = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  ids = await Promise.all(Array.from({ length: 8 }, gen))
  self = await gen()
})

const dirs: string[] = []
afterEach(async () => {
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
})

const addr = (i: number): string => `/ip4/10.0.${Math.floor(i / 250)}.${i % 250}/tcp/${4000 + i}`
const peer = (i: number, ...addrs: number[]): PeerAddress => ({ peerId: ids[i] ?? `peer-${i}`, multiaddrs: (addrs.length > 0 ? addrs : [i]).map(addr) })

function book (init: { maxPeers?: number } = {}): { book: PeerBook, advance: (ms: number) => void, now: () => number } {
  let t = 1_000_000
  const now = (): number => t
  return { book: new PeerBook({ self, now, ...init }), advance: (ms) => { t += ms }, now }
}

describe('PeerBook: each peer once', () => {
  it('keeps a peer with its first source, its first addresses and when; a later mention changes neither', () => {
    const { book: b, advance, now } = book()
    b.add([peer(1)], 'tracker')
    const heard = now()
    advance(5_000)
    b.add([peer(1, 50), peer(2)], 'pex')
    expect(b.size).toBe(2)
    expect(b.get(ids[1])).toEqual({ ...peer(1), source: 'tracker', since: heard, reachedAt: undefined })
    expect(b.sourceOf(ids[1])).toBe('tracker')
    expect(b.sourceOf(ids[2])).toBe('pex')
    expect(b.has(ids[3])).toBe(false)
    expect(b.sourceOf(ids[3])).toBeUndefined()
    expect(b.get(ids[3])).toBeUndefined()
  })

  it('passes on every peer but ourselves, those without an address and repeats in one call: known ones too, as given', () => {
    const { book: b } = book()
    b.add([peer(1)], 'tracker')
    const passed = b.add([peer(1, 9), { peerId: self, multiaddrs: [addr(3)] }, peer(2), { peerId: ids[4], multiaddrs: [] }, peer(2, 7)], 'dht')
    // peer 1 is passed on at the addresses given now (a tracker naming again a peer we lost is a reason to dial it)
    expect(passed).toEqual([peer(1, 9), peer(2)])
    expect(b.size).toBe(2)
    expect(b.get(ids[2])?.multiaddrs).toEqual([addr(2)])
  })

  it('refuses our own id from every source', () => {
    const { book: b } = book()
    for (const source of ['tracker', 'dht', 'pex', 'bootstrap', 'cache', 'incoming'] as const) {
      expect(b.add([{ peerId: self, multiaddrs: [addr(1)] }], source)).toEqual([])
    }
    expect(b.size).toBe(0)
    expect(b.has(self)).toBe(false)
    expect(b.self).toBe(self)
  })

  it('keeps at most MAX_KNOWN_ADDRS addresses of a peer, and hands out copies', () => {
    const { book: b } = book()
    const many = Array.from({ length: MAX_KNOWN_ADDRS + 4 }, (_, i) => addr(100 + i))
    b.add([{ peerId: ids[1], multiaddrs: many }], 'tracker')
    expect(b.get(ids[1])?.multiaddrs).toEqual(many.slice(0, MAX_KNOWN_ADDRS))
    b.get(ids[1])?.multiaddrs.push('/ip4/1.1.1.1/tcp/1')
    b.peers('tracker')[0].multiaddrs.push('/ip4/1.1.1.1/tcp/1')
    expect(b.get(ids[1])?.multiaddrs).toHaveLength(MAX_KNOWN_ADDRS)
  })

  it('refuses a bound that is not a positive integer; the default is MAX_KNOWN_PEERS', () => {
    expect(() => new PeerBook({ self, maxPeers: 0 })).toThrow(RangeError)
    expect(() => new PeerBook({ self, maxPeers: 2.5 })).toThrow(RangeError)
    const b = new PeerBook({ self })
    b.add(Array.from({ length: MAX_KNOWN_PEERS + 10 }, (_, i) => ({ peerId: `peer-${i}`, multiaddrs: [addr(i)] })), 'tracker')
    expect(b.size).toBe(MAX_KNOWN_PEERS)
    expect(b.has('peer-9')).toBe(false)
    expect(b.has('peer-10')).toBe(true)
  })
})

describe('PeerBook: the bound', () => {
  const named = (i: number): PeerAddress => ({ peerId: `peer-${i}`, multiaddrs: [addr(i)] })

  it('when full, the peer heard of first goes (a later mention does not make it younger)', () => {
    const { book: b } = book({ maxPeers: 3 })
    b.add([named(0), named(1), named(2)], 'tracker')
    b.add([named(0)], 'dht')
    b.add([named(3)], 'tracker')
    expect(b.all().map(p => p.peerId)).toEqual(['peer-1', 'peer-2', 'peer-3'])
    // one call with more than fit: the earliest of it go too
    b.add([named(4), named(5), named(6), named(7)], 'pex')
    expect(b.all().map(p => p.peerId)).toEqual(['peer-5', 'peer-6', 'peer-7'])
  })

  it('peers we reached go last: the first heard of among the others goes before them', () => {
    const { book: b } = book({ maxPeers: 3 })
    b.add([named(0), named(1), named(2)], 'tracker')
    expect(b.reached('peer-0')).toBe(true)
    b.add([named(3)], 'tracker')
    expect(b.all().map(p => p.peerId)).toEqual(['peer-0', 'peer-2', 'peer-3'])
    b.add([named(4), named(5)], 'tracker')
    expect(b.all().map(p => p.peerId)).toEqual(['peer-0', 'peer-4', 'peer-5'])
    // every one reached: the first heard of goes
    for (const id of ['peer-4', 'peer-5']) b.reached(id)
    b.add([named(6)], 'tracker')
    expect(b.all().map(p => p.peerId)).toEqual(['peer-4', 'peer-5', 'peer-6'])
  })
})

describe('PeerBook: by source', () => {
  it('peers(source) lists the peers that source named first, in the order heard; all() goes by PEER_SOURCES', () => {
    const { book: b } = book()
    b.add([peer(1), peer(2)], 'dht')
    b.add([peer(3)], 'tracker')
    b.add([peer(4), peer(1)], 'cache')
    b.add([peer(5)], 'bootstrap')
    b.add([peer(6)], 'pex')
    expect(b.peers('dht')).toEqual([peer(1), peer(2)])
    expect(b.peers('cache')).toEqual([peer(4)])
    expect(b.peers('incoming')).toEqual([])
    expect(b.all().map(p => [p.peerId, p.source])).toEqual([
      [ids[3], 'tracker'], [ids[1], 'dht'], [ids[2], 'dht'], [ids[6], 'pex'], [ids[5], 'bootstrap'], [ids[4], 'cache']
    ])
  })
})

describe('PeerBook: reached peers and the peer cache', () => {
  it('reached() marks a known peer with the time of its last session; an unknown one is not kept', () => {
    const { book: b, advance, now } = book()
    b.add([peer(1), peer(2)], 'tracker')
    advance(1_000)
    expect(b.reached(ids[1])).toBe(true)
    advance(1_000)
    expect(b.reached(ids[1])).toBe(true)
    // a peer that dialled us: we know no address of it to give the next run
    expect(b.reached(ids[5])).toBe(false)
    expect(b.has(ids[5])).toBe(false)
    expect(b.get(ids[1])?.reachedAt).toBe(now())
    expect(b.reachedPeers()).toEqual([{ ...peer(1), lastSeen: now() }])
  })

  it('round trip: what one run reached, the next run loads and its book keeps as heard of from the cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bitswarm-peer-book-'))
    dirs.push(dir)
    const first = book()
    first.book.add([peer(1), peer(2, 20, 21), peer(3)], 'tracker')
    first.book.add([peer(4)], 'pex')
    first.book.reached(ids[2])
    first.advance(1_000)
    first.book.reached(ids[4])
    const cache = new PeerCache({ dir, now: first.now })
    await cache.save(first.book.reachedPeers())

    // the next run: the file's peers, freshest first, into a new book
    const loaded = await new PeerCache({ dir, now: first.now }).load()
    expect(loaded).toEqual([peer(4), peer(2, 20, 21)])
    const next = book()
    expect(next.book.add(loaded, 'cache')).toEqual(loaded)
    expect(next.book.peers('cache')).toEqual(loaded)
    expect(next.book.reachedPeers()).toEqual([])
    // nothing reached in a run leaves the file as it was
    await new PeerCache({ dir, now: first.now }).save(next.book.reachedPeers())
    expect(await new PeerCache({ dir, now: first.now }).load()).toEqual(loaded)
  })
})
