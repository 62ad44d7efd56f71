// Pure policy behind issue 10 items 4, 6 and 11: whose addresses are listed, how hosts are
// grouped, quotas, fair eviction, host-spread sampling, the default connection cap.
import { describe, expect, it } from 'vitest'
import { hostOf, normalizeIp, ownAddrs } from '../../tracker/addresses.js'
import { defaultMaxConnections, descriptorLimit } from '../../tracker/connections.js'
import { QuotaExceededError, TrackerFullError } from '../../tracker/errors.js'
import { sampleByHost } from '../../tracker/logic.js'
import { MemoryPeerStore } from '../../tracker/store.js'
import type { PeerEntry } from '../../tracker/store.js'

let seq = 0n
function entry (peerId: string, host: string, lastSeen = 0): PeerEntry {
  return { peerId, multiaddrs: [], left: 1, lastSeen, countedComplete: false, seq: ++seq, host }
}

/** deterministic random() in [0, 1) */
function lcg (seed = 1): () => number {
  let x = seed
  return () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 }
}

describe('addresses', () => {
  it('normalizeIp: IPv4-mapped to IPv4, IPv6 canonical, garbage empty', () => {
    expect(normalizeIp('::ffff:127.0.0.2')).toBe('127.0.0.2')
    expect(normalizeIp('10.0.0.1')).toBe('10.0.0.1')
    expect(normalizeIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1')
    expect(normalizeIp('not an ip')).toBe('')
    expect(normalizeIp(undefined)).toBe('')
  })

  it('hostOf groups IPv6 by /64, IPv4 by address', () => {
    expect(hostOf('10.0.0.1')).toBe('10.0.0.1')
    expect(hostOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(hostOf('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64')
    expect(hostOf('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(hostOf('::1')).toBe('0:0:0:0::/64')
  })

  it('ownAddrs keeps addresses on the source IP, maps unspecified ones to it, drops the rest', () => {
    expect(ownAddrs([
      '/ip4/127.0.0.1/tcp/4001',
      '/ip4/127.0.0.1/tcp/9999', // a victim's port on someone else's host
      '/ip4/0.0.0.0/tcp/4002',
      '/ip4/192.168.1.5/tcp/4001',
      '/ip6/::/tcp/4003',
      '/dns4/example.com/tcp/4001',
      '/ip4/127.0.0.2/tcp/4004/ws'
    ], '127.0.0.2')).toEqual(['/ip4/127.0.0.2/tcp/4002', '/ip4/127.0.0.2/tcp/4004/ws'])
    expect(ownAddrs(['/ip6/2001:db8::1/tcp/1', '/ip6/::/udp/2/quic-v1', '/ip4/0.0.0.0/tcp/3'], '2001:db8::1'))
      .toEqual(['/ip6/2001:db8::1/tcp/1', '/ip6/2001:db8::1/udp/2/quic-v1'])
    // duplicates (an address and its unspecified twin) merge; no source IP, nothing listed
    expect(ownAddrs(['/ip4/10.0.0.1/tcp/1', '/ip4/0.0.0.0/tcp/1'], '10.0.0.1')).toEqual(['/ip4/10.0.0.1/tcp/1'])
    expect(ownAddrs(['/ip4/10.0.0.1/tcp/1'], '')).toEqual([])
  })

  it("ownAddrs lists circuit addresses through the tracker's own relay, and no one else's", () => {
    const relay = '/ip4/10.9.0.1/tcp/4001/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE'
    const other = '/ip4/10.9.0.2/tcp/4001/p2p/12D3KooWEzvVLz6fWBg6Mu3wbR5V6KuWcVZnqBuv8Nd1Dua5WACN'
    const addrs = [`${relay}/p2p-circuit`, `${other}/p2p-circuit`, `${relay}/p2p-circuit/p2p/12D3KooWEzvVLz6fWBg6Mu3wbR5V6KuWcVZnqBuv8Nd1Dua5WACN`, '/ip4/192.168.1.5/tcp/1']
    expect(ownAddrs(addrs, '172.16.0.9', [relay])).toEqual([`${relay}/p2p-circuit`])
    // without a relay of its own the tracker lists none
    expect(ownAddrs(addrs, '172.16.0.9')).toEqual([])
  })
})

describe('quotas and fair eviction', () => {
  it('maxSwarmsPerPeer: one identity is in at most that many swarms', () => {
    const store = new MemoryPeerStore({ maxSwarmsPerPeer: 2 })
    store.putPeer('m1', entry('p', 'h'), 0)
    store.putPeer('m2', entry('p', 'h'), 0)
    expect(() => { store.putPeer('m3', entry('p', 'h'), 0) }).toThrow(QuotaExceededError)
    store.putPeer('m1', entry('p', 'h'), 0) // known: replaced
    store.removePeer('m1', 'p', ++seq, 0)
    store.putPeer('m3', entry('p', 'h'), 0)
  })

  it('maxPeersPerIp: one host holds at most that many entries; its expired ones are swept first', () => {
    const store = new MemoryPeerStore({ maxPeersPerIp: 2 })
    store.putPeer('m', entry('a', 'h1', 0), 0)
    store.putPeer('m', entry('b', 'h1', 10), 0)
    expect(() => { store.putPeer('m', entry('c', 'h1', 20), 0) }).toThrow(/too many peers announced from this address \(max 2\)/)
    store.putPeer('m', entry('c', 'h2', 20), 0)
    // a expired (seen at 0, the cut is at 5): it makes room for its own host
    store.putPeer('m', entry('d', 'h1', 30), 5)
    expect(store.peers('m', 0).map(p => p.peerId).sort()).toEqual(['b', 'c', 'd'])
    expect(store.entriesOf('h1')).toBe(2)
  })

  it('a peer that moves to another host is counted there', () => {
    const store = new MemoryPeerStore({ maxPeersPerIp: 1 })
    store.putPeer('m', entry('a', 'h1'), 0)
    store.putPeer('m', entry('a', 'h2'), 0)
    expect(store.entriesOf('h1')).toBe(0)
    expect(store.entriesOf('h2')).toBe(1)
    store.putPeer('m', entry('b', 'h1'), 0)
  })

  it('a full swarm evicts the longest-silent entry of its most represented host, never a smaller host\'s', () => {
    const store = new MemoryPeerStore({ maxPeersPerManifest: 4 })
    store.putPeer('m', entry('x1', 'bad', 1), 0)
    store.putPeer('m', entry('x2', 'bad', 2), 0)
    store.putPeer('m', entry('x3', 'bad', 3), 0)
    store.putPeer('m', entry('h1', 'good', 4), 0)
    store.putPeer('m', entry('h2', 'good', 5), 0) // bad holds 3 > good's 1: x1 goes
    expect(store.peers('m', 0).map(p => p.peerId)).toEqual(['x2', 'x3', 'h1', 'h2'])
    // now 2 and 2: the bad host cannot push out the good one, nor the good one the bad
    expect(() => { store.putPeer('m', entry('x4', 'bad', 6), 0) }).toThrow(TrackerFullError)
    expect(() => { store.putPeer('m', entry('h3', 'good', 6), 0) }).toThrow(/swarm is full/)
    // a third host gets in, at the expense of the longest-silent of the largest (x2, then h1)
    store.putPeer('m', entry('n1', 'new', 7), 0)
    expect(store.peers('m', 0).map(p => p.peerId)).toEqual(['x3', 'h1', 'h2', 'n1'])
    expect(store.lastSeq('m', 'x2', 7)).toBeDefined() // evicted, its seq remembered
  })

  it('a full tracker evicts from the host with the most entries anywhere', () => {
    const store = new MemoryPeerStore({ maxPeersTotal: 3 })
    store.putPeer('m1', entry('x1', 'bad'), 0)
    store.putPeer('m2', entry('x2', 'bad'), 0)
    store.putPeer('m3', entry('x3', 'bad'), 0)
    store.putPeer('m4', entry('h', 'good'), 0)
    expect(store.size).toBe(3)
    expect(store.manifests().sort()).toEqual(['m2', 'm3', 'm4'])
  })

  it('hosts tied for the most entries: the longest-silent entry among them goes', () => {
    const store = new MemoryPeerStore({ maxPeersTotal: 3 })
    store.putPeer('m', entry('a', 'h1', 5), 0)
    store.putPeer('m', entry('b', 'h2', 1), 0)
    store.putPeer('m', entry('c', 'h3', 9), 0)
    store.putPeer('m', entry('d', 'h4', 10), 0)
    expect(store.peers('m', 0).map(p => p.peerId).sort()).toEqual(['a', 'c', 'd'])
  })

  it('full of swarms: a swarm held by one entry of the largest host yields to a new swarm', () => {
    const store = new MemoryPeerStore({ maxManifests: 3 })
    store.putPeer('m1', entry('x1', 'bad'), 0)
    store.putPeer('m1', entry('g1', 'good'), 0) // m1 has two peers: not a candidate
    store.putPeer('m2', entry('x2', 'bad'), 0)
    store.putPeer('m3', entry('x3', 'bad'), 0)
    store.putPeer('m4', entry('g2', 'good'), 0)
    expect(store.manifests().sort()).toEqual(['m1', 'm3', 'm4'])
    // good: 2 entries, bad: 2: no more room for either
    expect(() => { store.putPeer('m5', entry('x4', 'bad'), 0) }).toThrow(/max 3 swarms/)
    expect(() => { store.putPeer('m5', entry('g3', 'good'), 0) }).toThrow(/max 3 swarms/)
  })
})

describe('sampleByHost', () => {
  it('spreads an answer over hosts: one host with many entries gets no bigger share', () => {
    const candidates = [entry('seed', 'good'), ...Array.from({ length: 100 }, (_, i) => entry(`x${i}`, 'bad'))]
    const random = lcg(7)
    for (let i = 0; i < 20; i++) {
      const got = sampleByHost([...candidates], 5, random)
      expect(got).toHaveLength(5)
      expect(new Set(got).size).toBe(5)
      expect(got.map(p => p.peerId)).toContain('seed')
    }
    // three hosts, 4 wanted: every host present
    const three = [entry('a1', 'a'), entry('a2', 'a'), entry('b1', 'b'), entry('c1', 'c'), entry('c2', 'c')]
    expect(new Set(sampleByHost([...three], 4, random).map(p => p.host))).toEqual(new Set(['a', 'b', 'c']))
    // fewer candidates than wanted: all of them; random() === 1 is tolerated
    expect(sampleByHost([...three], 10, () => 1)).toHaveLength(5)
    expect(sampleByHost([], 10, random)).toEqual([])
  })
})

describe('connection cap', () => {
  it('defaults below the descriptor limit', () => {
    expect(descriptorLimit(() => 'Limit  Soft Limit  Hard Limit  Units\nMax open files            256                  4096                 files\n')).toBe(256)
    expect(descriptorLimit(() => { throw new Error('no /proc') })).toBeUndefined()
    expect(defaultMaxConnections(256)).toBe(192)
    expect(defaultMaxConnections(20)).toBe(16)
    expect(defaultMaxConnections(1_048_576)).toBe(16_384)
    expect(defaultMaxConnections(undefined)).toBe(4096)
  })
})
