/**
 * What a node listens on and advertises: `announce` addresses (advertised at once and first),
 * IPv6 beside IPv4 by default, a host without the IPv6 address still starting, and a tracker
 * announce over IPv4 (and over IPv6) working while the record carries both families.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { announceAddrs, createNode, fullAddrs } from '../../src/node.js'
import { Peer } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { ownAddrs } from '../../tracker/addresses.js'
import { completed, sha256File } from '../helpers/peers.js'

const addrs = Object.values(networkInterfaces()).flat().map(i => i?.address)
const HAS_IPV6 = addrs.includes('::1')
/** an IPv6 address this host does not have: listening on it fails as on a host without IPv6 */
const ABSENT_IPV6 = '::2'

const nodes: Libp2p[] = []
const peers: Peer[] = []
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
  await Promise.all(nodes.splice(0).map(async n => { await Promise.resolve(n.stop()) }))
  for (const c of cleanups.splice(0)) await c()
})

async function started (init: Parameters<typeof createNode>[0]): Promise<Libp2p> {
  const node = await createNode(init)
  nodes.push(node)
  await node.start()
  return node
}

describe('announce addresses', () => {
  it('are advertised at once, first, with the peer id: getMultiaddrs, announceAddrs, fullAddrs', async () => {
    const announce = ['/ip4/203.0.113.7/tcp/4001', '/dns4/seed.example.com/tcp/4001']
    const node = await started({ listen: ['/ip4/127.0.0.1/tcp/0'], announce })
    const id = node.peerId.toString()
    const all = node.getMultiaddrs().map(String)
    expect(all.slice(0, 2)).toEqual(announce.map(a => `${a}/p2p/${id}`))
    // besides the listen address, not instead of it: a peer on this host still reaches us
    expect(all.some(a => /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(a))).toBe(true)
    const bare = announceAddrs(node)
    expect(bare.slice(0, 2)).toEqual(announce)
    expect(bare).toHaveLength(3)
    expect(fullAddrs(node).slice(0, 2)).toEqual(announce.map(a => `${a}/p2p/${id}`))
    // and they are what identify tells other peers (the peer store holds our own record)
    await expect.poll(async () => (await node.peerStore.get(node.peerId)).addresses.map(a => a.multiaddr.toString()), { timeout: 3000 })
      .toEqual(expect.arrayContaining(announce))
  })

  it('a public address given as announce comes first even when the interfaces have many', async () => {
    const many = Array.from({ length: 20 }, () => '/ip4/127.0.0.1/tcp/0')
    const node = await started({ listen: many, announce: ['/ip4/198.51.100.9/tcp/4001'] })
    expect(announceAddrs(node).length).toBe(21)
    expect(announceAddrs(node)[0]).toBe('/ip4/198.51.100.9/tcp/4001')
  })
})

describe('listen addresses', () => {
  it.runIf(HAS_IPV6)('IPv4 and IPv6 by default; a peer dials us over IPv6', async () => {
    const node = await started({})
    const mine = announceAddrs(node)
    expect(mine.some(a => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true)
    const v6 = mine.find(a => a.startsWith('/ip6/::1/tcp/'))
    expect(v6).toBeDefined()
    const other = await started({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const conn = await other.dial(multiaddr(`${v6 as string}/p2p/${node.peerId.toString()}`))
    expect(conn.remoteAddr.toString()).toMatch(/^\/ip6\/::1\/tcp\//)
  })

  it.runIf(!addrs.includes(ABSENT_IPV6))('an IPv6 address that cannot be listened on does not stop the node (a host without IPv6)', async () => {
    const node = await started({ listen: ['/ip4/127.0.0.1/tcp/0', `/ip6/${ABSENT_IPV6}/tcp/0`] })
    const mine = announceAddrs(node)
    expect(mine.length).toBeGreaterThan(0)
    expect(mine.every(a => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true)
    // but an IPv6 address alone that cannot be had is an error: nothing to listen on at all
    const lone = await createNode({ listen: [`/ip6/${ABSENT_IPV6}/tcp/0`] })
    nodes.push(lone)
    await expect(lone.start()).rejects.toThrow(/EADDRNOTAVAIL|failed to be listened on/)
  })
})

describe('a tracker announce while the record carries IPv4 and IPv6 addresses', () => {
  for (const host of HAS_IPV6 ? ['127.0.0.1', '::1'] : ['127.0.0.1']) {
    it(`a leecher finds the seeder through a tracker on ${host} (default listen addresses)`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'bitswarm-addrs-'))
      cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
      const tracker: TrackerServer = createTrackerServer({ host, port: 0, interval: 2, minInterval: 1, statsInterval: 0, log: () => {} })
      await tracker.start()
      cleanups.push(async () => { await tracker.stop() })
      const file = join(dir, 'data.bin')
      await writeFile(file, randomBytes(300_000))
      const options = { trackers: [tracker.announceUrl], stateDir: false as const, dht: false }
      const seeder = await Peer.seed(file, options)
      peers.push(seeder)
      await seeder.start()
      // what the tracker would list of the seeder's record for an announce from `host`
      const bare = seeder.multiaddrs.map(a => a.replace(/\/p2p\/[^/]+$/, ''))
      if (HAS_IPV6) expect(bare.some(a => a.startsWith('/ip6/'))).toBe(true)
      const listed = ownAddrs(bare, host)
      expect(listed.length).toBeGreaterThan(0)
      expect(listed.every(a => a.startsWith(host.includes(':') ? '/ip6/::1/' : '/ip4/127.0.0.1/'))).toBe(true)

      const leecher = await Peer.get(seeder.cid.toString(), join(dir, 'out'), options)
      peers.push(leecher)
      const done = completed(leecher)
      await leecher.start()
      const got = await done
      expect(await sha256File(got.path)).toBe(await sha256File(file))
    })
  }
})
