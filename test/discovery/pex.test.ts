import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { beforeAll, describe, expect, it } from 'vitest'
import { fromWirePeers, PEX_MAX_PEERS, PexView, toWirePeers } from '../../src/discovery/pex.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import { encodePeers, MessageType, WireDecoder, type WirePeer } from '../../src/wire/codec.js'
import { prng } from '../helpers/prng.js'

/** A clock the test moves by hand. */
function clock (start = 0): { now: () => number, set: (t: number) => void } {
  let t = start
  return { now: () => t, set: (v: number) => { t = v } }
}

const fake = (i: number): PeerAddress => ({ peerId: `peer-${i}`, multiaddrs: [`/ip4/10.0.0.${i % 250}/tcp/${4000 + i}`] })
const ids = (peers: PeerAddress[]): string[] => peers.map(p => p.peerId)

/** Real peer ids, generated once: key generation is the slow part. */
let real: string[] = []
let secp: string
beforeAll(async () => {
  real = await Promise.all(Array.from({ length: 55 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
})

const addr = (i: number): string => `/ip4/192.168.1.${i % 250}/tcp/${5000 + i}`

describe('PexView: add, refresh, remove', () => {
  it('adds, reports and removes peers', () => {
    const view = new PexView({ now: () => 0 })
    expect(view.size).toBe(0)
    view.add(fake(1))
    view.add(fake(2))
    expect(view.size).toBe(2)
    expect(view.has('peer-1')).toBe(true)
    expect(view.has('peer-3')).toBe(false)
    view.remove('peer-1')
    view.remove('peer-9') // unknown: a no-op
    expect(view.has('peer-1')).toBe(false)
    expect(view.size).toBe(1)
  })

  it('refreshes a known peer instead of adding it twice, taking its new addresses', () => {
    const t = clock()
    const view = new PexView({ now: t.now, random: prng(1) })
    view.add({ peerId: 'a', multiaddrs: ['/ip4/1.1.1.1/tcp/1'] })
    t.set(10)
    view.add({ peerId: 'a', multiaddrs: ['/ip4/2.2.2.2/tcp/2'] })
    expect(view.size).toBe(1)
    expect(view.sample(5)).toEqual([{ peerId: 'a', multiaddrs: ['/ip4/2.2.2.2/tcp/2'] }])
  })

  it('an add with no address refreshes a known peer and keeps its addresses, and ignores an unknown one', () => {
    const t = clock()
    const view = new PexView({ now: t.now, maxAge: 100 })
    view.add({ peerId: 'a', multiaddrs: ['/ip4/1.1.1.1/tcp/1'] })
    view.add({ peerId: 'b', multiaddrs: [] })
    expect(view.has('b')).toBe(false)
    t.set(90)
    view.add({ peerId: 'a', multiaddrs: [] })
    t.set(150) // 150 after the first add, 60 after the refresh: still fresh
    expect(view.sample(5)).toEqual([{ peerId: 'a', multiaddrs: ['/ip4/1.1.1.1/tcp/1'] }])
  })

  it('keeps at most maxAddrs distinct addresses per peer', () => {
    const view = new PexView({ now: () => 0, maxAddrs: 3 })
    view.add({ peerId: 'a', multiaddrs: [addr(1), addr(1), addr(2), addr(3), addr(4)] })
    expect(view.sample(1)[0].multiaddrs).toEqual([addr(1), addr(2), addr(3)])
    const eight = new PexView({ now: () => 0 })
    eight.add({ peerId: 'b', multiaddrs: Array.from({ length: 9 }, (_, i) => addr(i)) })
    expect(eight.sample(1)[0].multiaddrs).toHaveLength(8)
  })

  it('when full, evicts the peer seen longest ago', () => {
    const t = clock()
    const view = new PexView({ now: t.now, maxSize: 3 })
    for (const i of [1, 2, 3]) {
      t.set(i)
      view.add(fake(i))
    }
    t.set(4)
    view.add(fake(1)) // refreshed: peer-2 is now the oldest
    t.set(5)
    view.add(fake(4))
    expect(view.size).toBe(3)
    expect(['peer-1', 'peer-2', 'peer-3', 'peer-4'].filter(id => view.has(id))).toEqual(['peer-1', 'peer-3', 'peer-4'])
    // refreshing a peer of a full view evicts nobody
    view.add(fake(3))
    expect(view.size).toBe(3)
    expect(view.has('peer-1')).toBe(true)
  })

  it('evicts by lastSeen even if the injected clock stepped back', () => {
    const t = clock(100)
    const view = new PexView({ now: t.now, maxSize: 2 })
    view.add(fake(1))
    t.set(50)
    view.add(fake(2)) // seen "before" peer-1
    t.set(200)
    view.add(fake(3))
    expect(view.has('peer-2')).toBe(false)
    expect(view.has('peer-1')).toBe(true)
  })

  it('rejects a nonsensical size', () => {
    expect(() => new PexView({ maxSize: 0 })).toThrow(RangeError)
    expect(() => new PexView({ maxAddrs: 1.5 })).toThrow(RangeError)
    expect(() => new PexView({ maxAge: -1 })).toThrow(RangeError)
  })
})

describe('PexView: sample', () => {
  function viewOf (n: number, seed = 1): PexView {
    const view = new PexView({ now: () => 0, random: prng(seed) })
    for (let i = 0; i < n; i++) view.add(fake(i))
    return view
  }

  it('returns n distinct peers from the view', () => {
    const view = viewOf(20)
    for (let round = 0; round < 50; round++) {
      const got = ids(view.sample(7))
      expect(got).toHaveLength(7)
      expect(new Set(got).size).toBe(7)
      for (const id of got) expect(view.has(id)).toBe(true)
    }
  })

  it('returns every fresh peer once when n exceeds the view, and nothing for n <= 0', () => {
    const view = viewOf(5)
    expect(ids(view.sample(50)).sort()).toEqual(['peer-0', 'peer-1', 'peer-2', 'peer-3', 'peer-4'])
    expect(view.sample(0)).toEqual([])
    expect(view.sample(-3)).toEqual([])
    expect(new PexView().sample(10)).toEqual([])
  })

  it('honours exclude', () => {
    const view = viewOf(6)
    const exclude = new Set(['peer-0', 'peer-2', 'peer-5', 'not-in-view'])
    for (let round = 0; round < 30; round++) {
      const got = ids(view.sample(2, exclude))
      expect(got).toHaveLength(2)
      for (const id of got) expect(exclude.has(id)).toBe(false)
    }
    expect(ids(view.sample(10, exclude)).sort()).toEqual(['peer-1', 'peer-3', 'peer-4'])
  })

  it('draws every subset about equally often', () => {
    // 5 peers, samples of 2: 10 subsets, each expected 1,200 times out of 12,000
    const view = viewOf(5, 0xbeef)
    const counts = new Map<string, number>()
    const trials = 12000
    for (let i = 0; i < trials; i++) {
      const key = ids(view.sample(2)).sort().join('+')
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    expect(counts.size).toBe(10)
    for (const n of counts.values()) expect(Math.abs(n - trials / 10)).toBeLessThan(trials / 10 * 0.1)
    // and the order within a sample is random too: peer-0 comes first in about half of its samples
    let first = 0
    let seen = 0
    for (let i = 0; i < trials; i++) {
      const got = ids(view.sample(2))
      if (got.includes('peer-0')) {
        seen++
        if (got[0] === 'peer-0') first++
      }
    }
    expect(Math.abs(first / seen - 0.5)).toBeLessThan(0.05)
  })

  it('does not sample entries older than maxAge, until they are refreshed', () => {
    const t = clock()
    const view = new PexView({ now: t.now, maxAge: 1000, random: prng(3) })
    view.add(fake(1))
    t.set(500)
    view.add(fake(2))
    t.set(1000) // peer-1 is exactly maxAge old: still fresh
    expect(ids(view.sample(10)).sort()).toEqual(['peer-1', 'peer-2'])
    t.set(1001)
    expect(ids(view.sample(10))).toEqual(['peer-2'])
    expect(view.size).toBe(2) // stale, not forgotten
    t.set(1600)
    expect(view.sample(10)).toEqual([])
    view.add(fake(1))
    expect(ids(view.sample(10))).toEqual(['peer-1'])
  })

  it('is deterministic for a given PRNG seed', () => {
    const run = (seed: number): string[][] => {
      const view = viewOf(30, seed)
      return Array.from({ length: 10 }, () => ids(view.sample(5)))
    }
    expect(run(42)).toEqual(run(42))
    expect(run(42)).not.toEqual(run(43))
  })

  it('returns copies: changing a sample does not change the view', () => {
    const view = viewOf(1)
    const [peer] = view.sample(1)
    peer.multiaddrs.push('/ip4/6.6.6.6/tcp/6')
    peer.peerId = 'changed'
    expect(view.sample(1)).toEqual([fake(0)])
  })
})

describe('toWirePeers', () => {
  it('caps a message at 50 peers (BEP 11) and 8 addrs per peer', () => {
    expect(PEX_MAX_PEERS).toBe(50)
    const peers = real.slice(0, 51).map((peerId, i) => ({ peerId, multiaddrs: [addr(i)] }))
    const wire = toWirePeers(peers)
    expect(wire).toHaveLength(50)
    const nine = toWirePeers([{ peerId: real[0], multiaddrs: Array.from({ length: 9 }, (_, i) => addr(i)) }])
    expect(nine[0].addrs).toHaveLength(8)
    expect(nine[0].addrs.map(a => multiaddr(a).toString())).toEqual(Array.from({ length: 8 }, (_, i) => addr(i)))
    // what comes out always encodes
    expect(() => encodePeers(wire)).not.toThrow()
  })

  it('skips addresses that do not parse, are too long or name another peer, and peers left with none', () => {
    const long = `/dns4/${'a'.repeat(250)}.example/tcp/1` // over 255 bytes once encoded
    const wire = toWirePeers([
      { peerId: real[0], multiaddrs: ['not a multiaddr', long, `/ip4/1.2.3.4/tcp/1/p2p/${real[1]}`, addr(1)] },
      { peerId: real[2], multiaddrs: ['garbage', long] },
      { peerId: 'not-a-peer-id', multiaddrs: [addr(3)] },
      { peerId: real[3], multiaddrs: [] }
    ])
    expect(wire).toHaveLength(1)
    expect(wire[0].addrs.map(a => multiaddr(a).toString())).toEqual([addr(1)])
  })

  it('strips a trailing /p2p/<own id>, but keeps a relay\'s /p2p/ inside a circuit address', () => {
    const circuit = `/ip4/1.2.3.4/tcp/1/p2p/${real[1]}/p2p-circuit`
    const wire = toWirePeers([{ peerId: real[0], multiaddrs: [`${addr(1)}/p2p/${real[0]}`, `${circuit}/p2p/${real[0]}`] }])
    expect(wire[0].addrs.map(a => multiaddr(a).toString())).toEqual([addr(1), circuit])
  })

  it('fills 50 slots with usable peers when some are skipped', () => {
    const peers: PeerAddress[] = [{ peerId: 'bad', multiaddrs: [addr(0)] }, ...real.slice(0, 52).map((peerId, i) => ({ peerId, multiaddrs: [addr(i)] }))]
    const wire = toWirePeers(peers)
    expect(wire).toHaveLength(50)
    expect(fromWirePeers(wire).peers[0].peerId).toBe(real[0])
  })
})

describe('fromWirePeers', () => {
  it('round-trips real peer ids and addresses, through the wire codec too', () => {
    const peers: PeerAddress[] = [
      { peerId: real[0], multiaddrs: [addr(1), '/ip6/::1/udp/4001/quic-v1', '/dns4/example.com/tcp/443/wss'] },
      { peerId: secp, multiaddrs: [`/ip4/1.2.3.4/tcp/1/p2p/${real[1]}/p2p-circuit`] },
      ...real.slice(2, 50).map((peerId, i) => ({ peerId, multiaddrs: [addr(i)] }))
    ]
    expect(fromWirePeers(toWirePeers(peers))).toEqual({ peers, dropped: 0 })
    const [msg, ...rest] = new WireDecoder().decode(encodePeers(toWirePeers(peers)))
    expect(rest).toEqual([])
    if (msg.type !== MessageType.Peers) throw new Error('not a peers message')
    expect(fromWirePeers(msg.peers)).toEqual({ peers, dropped: 0 })
  })

  it('accepts an RSA-style id (a 32-byte sha256 multihash)', () => {
    const id = Uint8Array.of(0x12, 0x20, ...new Uint8Array(32).fill(7))
    const { peers, dropped } = fromWirePeers([{ id, addrs: [multiaddr(addr(1)).bytes] }])
    expect(dropped).toBe(0)
    expect(peers[0].peerId).toMatch(/^Qm/)
  })

  it('drops and counts entries whose id is not a peer id', () => {
    const good = multiaddr(addr(1)).bytes
    const url = new TextEncoder().encode('https://example.com/')
    const bad: Uint8Array[] = [
      Uint8Array.of(0x2a), // not a multihash
      Uint8Array.of(0x12, 0x20, 1, 2, 3), // digest shorter than its length says
      Uint8Array.of(0x12, 0x04, 1, 2, 3, 4), // sha256 code, but not 32 bytes
      Uint8Array.of(0x00, url.byteLength, ...url), // identity multihash of a URL, not a key
      Uint8Array.of(0x00, 0x03, 1, 2, 3), // identity multihash of no key at all
      Uint8Array.of(0x55, 0x02, 1, 2), // another hash function
      new Uint8Array(64).fill(0xff)
    ]
    expect(fromWirePeers(bad.map(id => ({ id, addrs: [good] })))).toEqual({ peers: [], dropped: bad.length })
  })

  it('skips bad addresses, and drops and counts an entry left with none', () => {
    const id = (i: number): Uint8Array => toWirePeers([{ peerId: real[i], multiaddrs: [addr(i)] }])[0].id
    const raw: WirePeer[] = [
      { id: id(0), addrs: [Uint8Array.of(0xff, 0xff), multiaddr(addr(1)).bytes, Uint8Array.of(4, 127, 0, 0, 1, 6, 0x1f)] },
      { id: id(1), addrs: [Uint8Array.of(4, 1, 2)] }, // truncated ip4
      { id: id(2), addrs: [] },
      { id: id(3), addrs: [multiaddr(`${addr(3)}/p2p/${real[4]}`).bytes] } // someone else's address
    ]
    expect(fromWirePeers(raw)).toEqual({ peers: [{ peerId: real[0], multiaddrs: [addr(1)] }], dropped: 3 })
  })

  it('strips a /p2p/<own id> suffix a sender left on', () => {
    const id = toWirePeers([{ peerId: real[0], multiaddrs: [addr(0)] }])[0].id
    const { peers } = fromWirePeers([{ id, addrs: [multiaddr(`${addr(0)}/p2p/${real[0]}`).bytes, multiaddr(addr(0)).bytes] }])
    expect(peers).toEqual([{ peerId: real[0], multiaddrs: [addr(0)] }])
  })

  it('keeps the good entries of a mixed message, in order', () => {
    const random = prng(9)
    const good = toWirePeers(real.slice(0, 20).map((peerId, i) => ({ peerId, multiaddrs: [addr(i)] })))
    const raw: WirePeer[] = []
    let bad = 0
    for (const entry of good) {
      raw.push(entry)
      if (random() < 0.5) {
        const junk = Uint8Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256))
        raw.push(random() < 0.5 ? { id: junk, addrs: entry.addrs } : { id: entry.id, addrs: [junk.subarray(0, 1).fill(0xff)] })
        bad++
      }
    }
    expect(bad).toBeGreaterThan(3)
    const { peers, dropped } = fromWirePeers(raw)
    expect(dropped).toBe(bad)
    expect(ids(peers)).toEqual(real.slice(0, 20))
  })
})
