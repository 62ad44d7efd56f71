/**
 * The internet (WAN) DHT on loopback: an injected classifier plays "the internet" with 127.0.0.1
 * (what network-namespace tests do with 10.200.x), real libp2p nodes, no mocks. Servers serve
 * because their own address is "public"; a node on 127.0.0.2 (not in the range) stays a client,
 * still finds providers through the servers, and switches when told it is reachable.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterEach, describe, expect, it } from 'vitest'
import { DhtDiscovery } from '../../src/discovery/dht.js'
import { withPublicRanges, type AddressClassifier } from '../../src/net/address-class.js'
import { checkNode, createNode, fullAddrs, libp2pDefaults, wanDhtModeOf, WAN_DHT_PROTOCOL, DHT_PROTOCOL, type BitswarmNode, type DhtMode } from '../../src/node.js'
import { Peer } from '../../src/peer.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import type { KadDHT } from '@libp2p/kad-dht'
import type { PeerId } from '@libp2p/interface'
import { Libp2pNodeError } from '../../src/errors.js'

const nodes: BitswarmNode[] = []
const discoveries: DhtDiscovery[] = []
const peers: Peer[] = []
const logs: string[] = []

/** 127.0.0.1 is "the internet"; the rest of 127.0.0.0/8 stays loopback */
const INTERNET = withPublicRanges(['127.0.0.1/32'])

async function startNode (dht: DhtMode, addressClass?: AddressClassifier, host = '127.0.0.1'): Promise<BitswarmNode> {
  const node = await createNode({ listen: [`/ip4/${host}/tcp/0`], dht, addressClass })
  nodes.push(node)
  await node.start()
  return node
}

function discovery (node: BitswarmNode, cid: CID, mode?: DhtMode): DhtDiscovery {
  const d = new DhtDiscovery({ node, cid, mode, log: msg => logs.push(msg) })
  discoveries.push(d)
  return d
}

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(text)))
}

/** kad-dht's routing table (its class has `find`; the exported interface does not say so) */
function table (dht: KadDHT | undefined): { find: (peer: PeerId) => Promise<PeerId | undefined> } {
  return (dht as unknown as { routingTable: { find: (peer: PeerId) => Promise<PeerId | undefined> } }).routingTable
}

/** providers of the CID as `d` finds them, asked again until found (a fresh table can miss) */
async function findUntil (d: DhtDiscovery, timeout = 10_000): Promise<PeerAddress[]> {
  const t0 = Date.now()
  let found: PeerAddress[] = []
  while (found.length === 0 && Date.now() - t0 < timeout) {
    found = await d.findProviders({ signal: AbortSignal.timeout(2_000) })
    if (found.length === 0) await new Promise(resolve => setTimeout(resolve, 200))
  }
  return found
}

afterEach(async () => {
  for (const d of discoveries.splice(0)) d.stop()
  await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
  await Promise.all(nodes.splice(0).map(async n => { await Promise.resolve(n.stop()) }))
  logs.length = 0
})

describe('the WAN DHT', () => {
  it('serves from a public address: four nodes in a chain find a provider through it (server mode)', async () => {
    const cid = await cidOf('wan chain')
    const chain: BitswarmNode[] = []
    for (let i = 0; i < 4; i++) chain.push(await startNode('wan', INTERNET))
    for (const n of chain) {
      // `wan` only: no LAN DHT, and the WAN one on our own protocol id
      expect(n.services.dht).toBeUndefined()
      expect(n.services.wanDHT).toBeDefined()
      await expect.poll(() => n.services.wanDHT?.getMode(), { timeout: 2_000, interval: 20 }).toBe('server')
      expect(n.getProtocols()).toContain(WAN_DHT_PROTOCOL)
      expect(n.getProtocols()).not.toContain(DHT_PROTOCOL)
    }
    const ds = chain.map(n => discovery(n, cid))
    for (let i = 1; i < chain.length; i++) {
      expect(await ds[i]!.bootstrap(fullAddrs(chain[i - 1]!), { signal: AbortSignal.timeout(5_000) })).toHaveLength(1)
    }
    await expect.poll(() => ds.every(d => d.routingTableSize > 0), { timeout: 5_000, interval: 20 }).toBe(true)
    ds[0]!.start()
    await expect.poll(() => ds[0]!.provided, { timeout: 10_000, interval: 20 }).toBe(true)
    const found = await findUntil(ds[3]!)
    expect(found.map(p => p.peerId)).toEqual([chain[0]!.peerId.toString()])
    expect(found[0]!.multiaddrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    expect(ds[3]!.tablesStatus()).toEqual({ wan: { routingTable: expect.any(Number), provided: false, mode: 'server' } })
    expect(logs).toEqual([])
  })

  it('a node whose addresses are all private stays a client, finds providers through the servers, and serves once told it is reachable', async () => {
    const cid = await cidOf('wan client')
    const servers: BitswarmNode[] = []
    for (let i = 0; i < 3; i++) servers.push(await startNode('wan', INTERNET))
    // 127.0.0.2: loopback, not "the internet"
    const client = await startNode('wan', INTERNET, '127.0.0.2')
    const sd = servers.map(n => discovery(n, cid))
    const cd = discovery(client, cid)
    for (let i = 1; i < servers.length; i++) await sd[i]!.bootstrap(fullAddrs(servers[i - 1]!), { signal: AbortSignal.timeout(5_000) })
    expect(await cd.bootstrap(fullAddrs(servers[2]!), { signal: AbortSignal.timeout(5_000) })).toHaveLength(1)
    await expect.poll(() => sd.every(d => d.routingTableSize > 0) && cd.routingTableSize > 0, { timeout: 5_000, interval: 20 }).toBe(true)

    const mode = wanDhtModeOf(client)
    expect(mode).toBeDefined()
    expect(client.services.wanDHT?.getMode()).toBe('client')
    expect(mode?.wanted()).toBe('client')
    expect(client.getProtocols()).not.toContain(WAN_DHT_PROTOCOL)
    // a client is nobody's contact (a server is)
    expect(await table(servers[1]!.services.wanDHT).find(servers[0]!.peerId)).toBeDefined()
    for (const s of servers) expect(await table(s.services.wanDHT).find(client.peerId)).toBeUndefined()

    sd[0]!.start()
    await expect.poll(() => sd[0]!.provided, { timeout: 10_000, interval: 20 }).toBe(true)
    const found = await findUntil(cd)
    expect(found.map(p => p.peerId)).toEqual([servers[0]!.peerId.toString()])
    expect(cd.tablesStatus().wan?.mode).toBe('client')

    // still a client after its addresses are looked at again
    await mode?.evaluate()
    expect(client.services.wanDHT?.getMode()).toBe('client')
    // AutoNAT (or an operator) says others get in: it serves; says they do not: back to a client
    await mode?.setReachable(true)
    expect(client.services.wanDHT?.getMode()).toBe('server')
    expect(client.getProtocols()).toContain(WAN_DHT_PROTOCOL)
    await mode?.setReachable(false)
    expect(client.services.wanDHT?.getMode()).toBe('client')
    // a public server told it is unreachable stops serving, and serves again when the signal is withdrawn
    const serverMode = wanDhtModeOf(servers[1]!)
    await serverMode?.setReachable(false)
    expect(servers[1]!.services.wanDHT?.getMode()).toBe('client')
    await serverMode?.setReachable(undefined)
    expect(servers[1]!.services.wanDHT?.getMode()).toBe('server')
  })

  it('auto runs both: with 127.0.0.1 "public" the LAN table stays empty and the WAN one finds the provider', async () => {
    const cid = await cidOf('auto both')
    const all: BitswarmNode[] = []
    for (let i = 0; i < 3; i++) all.push(await startNode('auto', INTERNET))
    for (const n of all) {
      expect(n.services.dht).toBeDefined()
      expect(n.services.wanDHT).toBeDefined()
      await expect.poll(() => n.services.wanDHT?.getMode(), { timeout: 2_000, interval: 20 }).toBe('server')
      // the LAN DHT serves as before
      expect(n.services.dht?.getMode()).toBe('server')
    }
    const ds = all.map(n => discovery(n, cid))
    for (let i = 1; i < all.length; i++) await ds[i]!.bootstrap(fullAddrs(all[i - 1]!), { signal: AbortSignal.timeout(5_000) })
    await expect.poll(() => ds.every(d => (d.tablesStatus().wan?.routingTable ?? 0) > 0), { timeout: 5_000, interval: 20 }).toBe(true)
    ds[0]!.start()
    await expect.poll(() => ds[0]!.provided, { timeout: 10_000, interval: 20 }).toBe(true)
    const found = await findUntil(ds[2]!)
    expect(found.map(p => p.peerId)).toEqual([all[0]!.peerId.toString()])
    // the empty LAN table is not asked: it would hold the lookup until its signal fires
    const t0 = Date.now()
    expect(await ds[2]!.findProviders({ signal: AbortSignal.timeout(5_000) })).toEqual(found)
    expect(Date.now() - t0).toBeLessThan(2_000)
    const status = ds[2]!.tablesStatus()
    expect(status.lan).toEqual({ routingTable: 0, provided: false, mode: 'server' })
    expect(status.wan?.mode).toBe('server')
    expect(logs).toEqual([])
  })

  it('auto with the default classifier: the LAN DHT works as before, the WAN one stays an empty client', async () => {
    const a = await startNode('auto')
    const b = await startNode('auto')
    const cid = await cidOf('auto lan')
    const da = discovery(a, cid)
    const db = discovery(b, cid)
    await db.bootstrap(fullAddrs(a), { signal: AbortSignal.timeout(5_000) })
    await expect.poll(() => da.routingTableSize > 0 && db.routingTableSize > 0, { timeout: 5_000, interval: 20 }).toBe(true)
    da.start()
    await expect.poll(() => da.provided, { timeout: 10_000, interval: 20 }).toBe(true)
    expect((await findUntil(db)).map(p => p.peerId)).toEqual([a.peerId.toString()])
    expect(db.tablesStatus()).toEqual({
      lan: { routingTable: 1, provided: false, mode: 'server' },
      wan: { routingTable: 0, provided: false, mode: 'client' }
    })
    expect(a.services.wanDHT?.getMode()).toBe('client')
  })
})

describe('DHT modes of a peer', () => {
  it('off (and false) runs no DHT at all; lan only the LAN one; the status says which', async () => {
    const offNode = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], dht: 'off' })
    nodes.push(offNode)
    expect(offNode.services.dht).toBeUndefined()
    expect(offNode.services.wanDHT).toBeUndefined()
    const lanNode = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], dht: 'lan' })
    nodes.push(lanNode)
    expect(lanNode.services.dht).toBeDefined()
    expect(lanNode.services.wanDHT).toBeUndefined()

    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'bitswarm-dht-modes-'))
    try {
      const file = join(dir, 'f.bin')
      await writeFile(file, 'x'.repeat(1000))
      const base = { listen: ['/ip4/127.0.0.1/tcp/0'], stateDir: false as const, progressInterval: 0 }
      for (const dht of [false, 'off'] as const) {
        const p = await Peer.seed(file, { ...base, dht })
        peers.push(p)
        await p.start()
        expect(p.libp2p.services.dht).toBeUndefined()
        expect(p.libp2p.services.wanDHT).toBeUndefined()
        expect(p.discoveryStatus().dht).toEqual({ routingTable: 0, provided: false, mode: 'off' })
      }
      const lan = await Peer.seed(file, { ...base, dht: 'lan' })
      peers.push(lan)
      await lan.start()
      expect(lan.discoveryStatus().dht).toEqual({ routingTable: 0, provided: false, mode: 'lan', lan: { routingTable: 0, provided: false, mode: 'server' } })
      const auto = await Peer.seed(file, { ...base, addressClass: INTERNET })
      peers.push(auto)
      await auto.start()
      await expect.poll(() => auto.discoveryStatus().dht.wan?.mode, { timeout: 2_000, interval: 20 }).toBe('server')
      expect(auto.discoveryStatus().dht).toMatchObject({ mode: 'auto', lan: { mode: 'server' }, wan: { mode: 'server' } })
      await expect(Peer.seed(file, { ...base, dht: 'amino' as DhtMode })).rejects.toThrow(/dht must be one of/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a program\'s node: wan needs services.wanDHT, lan services.dht, auto either', async () => {
    const { createLibp2p } = await import('libp2p')
    const privateKey = await generateKeyPair('Ed25519')
    const lanOnly = await createLibp2p(libp2pDefaults({ listen: ['/ip4/127.0.0.1/tcp/0'], privateKey, dht: 'lan' }))
    nodes.push(lanOnly as BitswarmNode)
    expect(() => checkNode(lanOnly, { dht: 'wan' })).toThrow(Libp2pNodeError)
    expect(() => checkNode(lanOnly, { dht: 'wan' })).toThrow(/services.wanDHT/)
    expect(() => checkNode(lanOnly, { dht: 'lan' })).not.toThrow()
    expect(() => checkNode(lanOnly, { dht: 'auto' })).not.toThrow()
    expect(() => checkNode(lanOnly, { dht: true })).not.toThrow()
    const wanOnly = await createLibp2p(libp2pDefaults({ listen: ['/ip4/127.0.0.1/tcp/0'], dht: 'wan' }))
    nodes.push(wanOnly as BitswarmNode)
    expect(() => checkNode(wanOnly, { dht: 'lan' })).toThrow(/no kad-dht service|another name/)
    expect(() => checkNode(wanOnly, { dht: 'auto' })).not.toThrow()
    expect(() => checkNode(wanOnly, { dht: false })).not.toThrow()
  })
})
