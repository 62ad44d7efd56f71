// Unit tests of Discovery's policy (which source is used when, what it emits, its status, its
// lifecycle). Most build Discovery's own DhtDiscovery, PeerCache and TrackerAnnouncers, over the
// libp2p node it is given (a fake: dial, peerId, getMultiaddrs and a fake `services.dht`), the
// state dir (a temp dir), and HTTP trackers on 127.0.0.1 (the real tracker, a hand-written one,
// or a closed port); the last ones pass fake components in (DiscoveryComponents) on a fake
// clock. No libp2p node is started and nothing leaves loopback.
import { createServer as createHttpServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { TypedEventEmitter } from 'main-event'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Discovery } from '../../src/discovery/discovery.js'
import type { DiscoveryAnnouncer, DiscoveryCache, DiscoveryComponents, DiscoveryDht, DiscoveryInit } from '../../src/discovery/discovery.js'
import { PeerBook } from '../../src/discovery/peer-book.js'
import { PeerCache } from '../../src/discovery/peer-cache.js'
import type { TrackerAnnouncerEvents } from '../../src/discovery/tracker-client.js'
import type { ReachedPeer } from '../../src/discovery/peer-book.js'
import type { PeerAddress, PeerSource } from '../../src/discovery/types.js'
import type { BitswarmNode } from '../../src/node.js'
import { createTrackerServer } from '../../tracker/server.js'
import type { TrackerServer } from '../../tracker/server.js'
import { closeServer } from '../tracker/helpers.js'

interface Key { key: PrivateKey, id: PeerId }

async function makeKey (): Promise<Key> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key) }
}

/** Resolves when the signal fires, with its reason as a rejection. */
async function untilAborted (signal: AbortSignal): Promise<never> {
  return await new Promise<never>((_resolve, reject) => {
    if (signal.aborted) { reject(signal.reason); return }
    signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
  })
}

/** A libp2p node as far as Discovery and DhtDiscovery use it, recording every call. */
class FakeNode {
  readonly peerId: PeerId
  readonly key: PrivateKey
  /** full multiaddrs (with /p2p) that a dial reaches */
  readonly reachable = new Set<string>()
  readonly dials: string[] = []
  readonly dialSignals: AbortSignal[] = []
  hangDials = false
  providers: Array<{ id: PeerId, multiaddrs: Multiaddr[] }> = []
  readonly findSignals: AbortSignal[] = []
  /** when set, findProviders waits for it before answering */
  findGate: Promise<void> | undefined
  provides = 0
  cancelReprovides = 0
  routingTableSize = 0
  addrs = ['/ip4/127.0.0.1/tcp/4001']

  constructor (k: Key) {
    this.key = k.key
    this.peerId = k.id
  }

  asNode (): BitswarmNode {
    const fake = this as FakeNode
    const dht = {
      routingTable: { get size () { return fake.routingTableSize } },
      getMode: () => 'server',
      cancelReprovide: async () => { fake.cancelReprovides++ },
      provide: (_cid: CID, _options: { signal: AbortSignal }) => (async function * () {
        fake.provides++
        yield { name: 'PEER_RESPONSE', messageName: 'ADD_PROVIDER' }
      })(),
      findProviders: (_cid: CID, options: { signal: AbortSignal }) => (async function * () {
        fake.findSignals.push(options.signal)
        if (fake.findGate != null) await fake.findGate
        yield { name: 'PROVIDER', providers: fake.providers }
      })()
    }
    return {
      peerId: this.peerId,
      getMultiaddrs: () => fake.addrs.map(a => multiaddr(a)),
      dial: async (ma: Multiaddr, options: { signal: AbortSignal }) => {
        const text = ma.toString()
        fake.dials.push(text)
        fake.dialSignals.push(options.signal)
        if (fake.hangDials) await untilAborted(options.signal)
        if (!fake.reachable.has(text)) throw new Error('connection refused')
        return {}
      },
      services: { dht }
    } as unknown as BitswarmNode
  }
}

let cid: CID
let self: Key
const others: Key[] = []

beforeAll(async () => {
  cid = CID.createV1(0x71, await sha256.digest(new TextEncoder().encode('discovery-unit')))
  self = await makeKey()
  for (let i = 0; i < 25; i++) others.push(await makeKey())
})

const discoveries: Discovery[] = []
const trackers: TrackerServer[] = []
const servers: Server[] = []
const dirs: string[] = []

afterEach(async () => {
  vi.useRealTimers()
  await Promise.all(discoveries.splice(0).map(async d => { await d.stop() }))
  await Promise.all(trackers.splice(0).map(async t => { await t.stop() }))
  await Promise.all(servers.splice(0).map(closeServer))
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
})

interface Seen { peers: PeerAddress[], source: PeerSource }

function make (node: FakeNode, init: Partial<DiscoveryInit> = {}, components: Partial<DiscoveryComponents> = {}): { d: Discovery, seen: Seen[], logs: string[] } {
  const seen: Seen[] = []
  const logs: string[] = []
  const d = new Discovery({
    node: node.asNode(),
    privateKey: node.key,
    cid,
    trackers: [],
    bootstrap: [],
    getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
    wantPeers: () => true,
    log: msg => { logs.push(msg) },
    ...init
  }, components)
  d.addEventListener('peers', evt => { seen.push(evt.detail) })
  discoveries.push(d)
  return { d, seen, logs }
}

/** A peer cache file in `dir` holding `peers`, as an earlier run that reached them would leave it. */
async function cacheFile (dir: string, peers: PeerAddress[]): Promise<void> {
  await new PeerCache({ dir }).save(peers.map(p => ({ ...p, lastSeen: Date.now() })))
}

async function stateDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bitswarm-discovery-'))
  dirs.push(dir)
  return dir
}

/** Lets promise chains and fs callbacks run (setImmediate is never faked here). */
async function settle (rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>(resolve => { setImmediate(resolve) })
}

/** Real-time polling; only with real timers. */
async function waitFor (what: string, cond: () => boolean, timeout = 2_000): Promise<void> {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

function fakeTimers (): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
}

function full (addr: string, k: Key): string {
  return `${addr}/p2p/${k.id.toString()}`
}

function ids (seen: Seen[], source?: PeerSource): string[] {
  return seen.filter(s => source == null || s.source === source).flatMap(s => s.peers.map(p => p.peerId))
}

async function closedPort (): Promise<number> {
  const s = createNetServer()
  await new Promise<void>(resolve => { s.listen(0, '127.0.0.1', () => { resolve() }) })
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => { s.close(() => { resolve() }) })
  return port
}

interface FakeTracker { url: string, queries: URLSearchParams[] }

/** A hand-written tracker that records every query and answers `peers`. */
async function fakeTracker (peers: () => unknown[] = () => []): Promise<FakeTracker> {
  const queries: URLSearchParams[] = []
  const s = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    queries.push(new URL(req.url ?? '/', 'http://x').searchParams)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ interval: 600, complete: 0, incomplete: 1, peers: peers() }))
  })
  servers.push(s)
  await new Promise<void>(resolve => { s.listen(0, '127.0.0.1', () => { resolve() }) })
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/announce`, queries }
}

async function realTracker (): Promise<TrackerServer> {
  const t = createTrackerServer({ port: 0, host: '127.0.0.1', log: () => {}, statsInterval: 0 })
  trackers.push(t)
  await t.start()
  return t
}

describe('Discovery: construction and status', () => {
  it('refuses trackers without the node key', () => {
    const node = new FakeNode(self)
    expect(() => new Discovery({
      node: node.asNode(), cid, trackers: ['http://127.0.0.1:1/announce'], bootstrap: [],
      getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 0 }), wantPeers: () => true
    })).toThrow(TypeError)
  })

  it('reports tracker "none" without trackers, and the DHT routing table and provide state', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    node.routingTableSize = 7
    const { d } = make(node)
    expect(d.status()).toEqual({ tracker: 'none', dht: { routingTable: 7, provided: false, mode: 'auto', lan: { routingTable: 7, provided: false, mode: 'server' } } })
    expect(d.trackersUp).toBe(false)
    await d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(node.provides).toBe(1)
    expect(d.status()).toEqual({ tracker: 'none', dht: { routingTable: 7, provided: true, mode: 'auto', lan: { routingTable: 7, provided: true, mode: 'server' } } })
    await d.stop()
    // stopping withdraws the provider record
    expect(node.cancelReprovides).toBe(1)
    expect(d.status().dht.provided).toBe(false)
  })

  it('with dht: false neither provides nor looks up, and reports provided: false', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    node.providers = [{ id: others[0]!.id, multiaddrs: [multiaddr('/ip4/10.0.0.1/tcp/4001')] }]
    const { d, seen } = make(node, { dht: false })
    await d.start()
    await vi.advanceTimersByTimeAsync(10_000)
    await d.lookup()
    expect(node.provides).toBe(0)
    expect(node.findSignals).toHaveLength(0)
    expect(seen).toEqual([])
    expect(d.status().dht.provided).toBe(false)
  })

  it('reports pending, then ok / down per tracker, comma-separated', async () => {
    const up = await realTracker()
    const down = `http://127.0.0.1:${await closedPort()}/announce`
    const node = new FakeNode(self)
    const { d } = make(node, { trackers: [up.announceUrl, down], dht: false, wantPeers: () => false })
    expect(d.status().tracker).toBe('pending,pending')
    expect(d.trackersUp).toBe(false)
    await d.start()
    await waitFor('both trackers answered or failed', () => d.status().tracker === 'ok,down')
    expect(d.trackersUp).toBe(true)
  })

  it('reports down (and trackersUp false) when the only tracker is unreachable', async () => {
    const node = new FakeNode(self)
    const { d, logs } = make(node, { trackers: [`http://127.0.0.1:${await closedPort()}/announce`], dht: false, wantPeers: () => false })
    await d.start()
    await waitFor('tracker down', () => d.status().tracker === 'down')
    expect(d.trackersUp).toBe(false)
    expect(logs.some(l => l.includes('down'))).toBe(true)
  })
})

describe('Discovery: sources', () => {
  it('looks up the DHT 1 s after start, then every lookupInterval while it wants peers (no tracker)', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    node.providers = [{ id: others[0]!.id, multiaddrs: [multiaddr('/ip4/10.0.0.1/tcp/4001')] }]
    let want = true
    const { d, seen } = make(node, { lookupInterval: 500, wantPeers: () => want })
    await d.start()
    await vi.advanceTimersByTimeAsync(999)
    expect(node.findSignals).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(node.findSignals).toHaveLength(1)
    expect(seen).toEqual([{ source: 'dht', peers: [{ peerId: others[0]!.id.toString(), multiaddrs: ['/ip4/10.0.0.1/tcp/4001'] }] }])
    await vi.advanceTimersByTimeAsync(1_000)
    expect(node.findSignals).toHaveLength(3)
    // not wanting peers: no lookups
    want = false
    await vi.advanceTimersByTimeAsync(5_000)
    expect(node.findSignals).toHaveLength(3)
    want = true
    await vi.advanceTimersByTimeAsync(500)
    expect(node.findSignals).toHaveLength(4)
  })

  it('looks up the DHT 6x less often while a tracker answers than while it is down', async () => {
    const up = await realTracker()
    const downUrl = `http://127.0.0.1:${await closedPort()}/announce`
    const a = new FakeNode(self)
    const b = new FakeNode(others[20]!)
    const withUp = make(a, { trackers: [up.announceUrl], lookupInterval: 100 })
    const withDown = make(b, { trackers: [downUrl], lookupInterval: 100 })
    await Promise.all([withUp.d.start(), withDown.d.start()])
    await waitFor('tracker states', () => withUp.d.trackersUp && withDown.d.status().tracker === 'down')
    await new Promise(resolve => setTimeout(resolve, 1_500))
    // first tick at 1 s looks up in both; then every 100 ms while down, every 600 ms while up
    expect(a.findSignals.length).toBeGreaterThanOrEqual(1)
    expect(a.findSignals.length).toBeLessThanOrEqual(2)
    expect(b.findSignals.length).toBeGreaterThanOrEqual(4)
  })

  it('emits peers from a real tracker tagged tracker, and asks for 200 while it wants peers', async () => {
    const t = await realTracker()
    const a = new FakeNode(others[21]!)
    a.addrs = ['/ip4/127.0.0.1/tcp/4101']
    const b = new FakeNode(self)
    b.addrs = ['/ip4/127.0.0.1/tcp/4102']
    const first = make(a, { trackers: [t.announceUrl], dht: false })
    await first.d.start()
    await waitFor('a registered', () => first.d.trackersUp)
    const second = make(b, { trackers: [t.announceUrl], dht: false })
    await second.d.start()
    await waitFor('b got a', () => second.seen.length > 0)
    expect(second.seen[0]).toEqual({ source: 'tracker', peers: [{ peerId: a.peerId.toString(), multiaddrs: ['/ip4/127.0.0.1/tcp/4101'] }] })
    expect(ids(second.seen)).not.toContain(b.peerId.toString())
  })

  it('asks the tracker for numwant=200 only while it wants peers; announces started once, completed and stopped', async () => {
    const ft = await fakeTracker()
    const node = new FakeNode(self)
    let want = true
    const { d } = make(node, { trackers: [ft.url], dht: false, wantPeers: () => want })
    await Promise.all([d.start(), d.start()])
    await waitFor('started', () => ft.queries.length === 1 && d.trackersUp)
    expect(ft.queries[0]!.get('event')).toBe('started')
    expect(ft.queries[0]!.get('numwant')).toBe('200')
    want = false
    d.completed()
    await waitFor('completed', () => ft.queries.length === 2)
    expect(ft.queries[1]!.get('event')).toBe('completed')
    expect(ft.queries[1]!.has('numwant')).toBe(false)
    await d.stop()
    await d.stop()
    expect(ft.queries.map(q => q.get('event'))).toEqual(['started', 'completed', 'stopped'])
  })

  it('dials bootstrap addresses at start, emits the ones that answer as bootstrap, and looks up at once', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    const ok = full('/ip4/10.0.0.1/tcp/4001', others[0]!)
    const bad = full('/ip4/10.0.0.2/tcp/4001', others[1]!)
    node.reachable.add(ok)
    node.providers = [{ id: others[2]!.id, multiaddrs: [multiaddr('/ip4/10.0.0.3/tcp/4001')] }]
    const { d, seen, logs } = make(node, { bootstrap: [ok, bad, '/ip4/10.0.0.4/tcp/4001'] })
    await d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(node.dials.sort()).toEqual([ok, bad].sort())
    expect(seen[0]).toEqual({ source: 'bootstrap', peers: [{ peerId: others[0]!.id.toString(), multiaddrs: ['/ip4/10.0.0.1/tcp/4001'] }] })
    // a bootstrap peer answered: the DHT lookup does not wait for the 1 s tick
    expect(node.findSignals).toHaveLength(1)
    expect(seen[1]?.source).toBe('dht')
    expect(logs.some(l => l.includes('without /p2p'))).toBe(true)
    // dht: false still dials the bootstrap addresses
    const other = new FakeNode(others[22]!)
    other.reachable.add(ok)
    const noDht = make(other, { bootstrap: [ok], dht: false })
    await noDht.d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(other.dials).toEqual([ok])
    expect(ids(noDht.seen, 'bootstrap')).toEqual([others[0]!.id.toString()])
  })

  it('logs once and emits nothing when no bootstrap address answers', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    const { d, seen, logs } = make(node, { bootstrap: [full('/ip4/10.0.0.1/tcp/4001', others[0]!)], wantPeers: () => false })
    await d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(seen).toEqual([])
    expect(logs).toContain('bootstrap: none of 1 addresses answered')
  })

  it('remembers bootstrap peers that answered in the peer cache (saved on stop)', async () => {
    const dir = await stateDir()
    const node = new FakeNode(self)
    const ok = full('/ip4/10.0.0.1/tcp/4001', others[0]!)
    node.reachable.add(ok)
    const { d, seen } = make(node, { bootstrap: [ok], stateDir: dir, dht: false })
    await d.start()
    await waitFor('bootstrap peer', () => seen.length > 0)
    await d.stop()
    expect(await new PeerCache({ dir }).load()).toEqual([{ peerId: others[0]!.id.toString(), multiaddrs: ['/ip4/10.0.0.1/tcp/4001'] }])
  })

  it('dials cached peers (at most 20, 2 addresses each) and emits those that answer as cache', async () => {
    const dir = await stateDir()
    const peers = others.slice(0, 22).map((k, i) => ({ peerId: k.id.toString(), multiaddrs: [`/ip4/10.1.${i}.1/tcp/4001`, `/ip4/10.1.${i}.2/tcp/4001`, `/ip4/10.1.${i}.3/tcp/4001`] }))
    await cacheFile(dir, peers)
    const node = new FakeNode(self)
    node.reachable.add(full('/ip4/10.1.0.2/tcp/4001', others[0]!))
    const { d, seen, logs } = make(node, { stateDir: dir, dht: false })
    expect(await d.cachedPeers()).toHaveLength(22)
    await d.start()
    await waitFor('cache dials', () => node.dials.length === 40)
    await waitFor('cache peer', () => seen.length > 0)
    expect(seen).toEqual([{ source: 'cache', peers: [{ peerId: others[0]!.id.toString(), multiaddrs: ['/ip4/10.1.0.2/tcp/4001'] }] }])
    expect(node.dials.some(a => a.startsWith('/ip4/10.1.0.3/'))).toBe(false)
    // the 39 dials that failed are expected of peers from earlier runs: one line, not 39
    expect(logs.filter(l => l.includes('failed'))).toEqual([])
    expect(logs.filter(l => l.startsWith('peer cache:'))).toEqual(['peer cache: 1 of the peers remembered from earlier runs answered (40 addresses dialled)'])
    // without a state dir there is no cache
    expect(await make(new FakeNode(self)).d.cachedPeers()).toEqual([])
  })

  it('never emits our own id, from any source, nor a peer without addresses', async () => {
    const dir = await stateDir()
    await cacheFile(dir, [{ peerId: self.id.toString(), multiaddrs: ['/ip4/10.2.0.1/tcp/4001'] }])
    // the announcer signs with another key than the node's, so the tracker client's own filter
    // does not drop the node's id: Discovery's must
    const ft = await fakeTracker(() => [
      { peerId: self.id.toString(), multiaddrs: ['/ip4/10.2.0.2/tcp/4001'] },
      { peerId: others[1]!.id.toString(), multiaddrs: ['/ip4/10.2.0.3/tcp/4001'] }
    ])
    const node = new FakeNode(self)
    node.reachable.add(full('/ip4/10.2.0.1/tcp/4001', self))
    node.reachable.add(full('/ip4/10.2.0.4/tcp/4001', self))
    node.providers = [
      { id: self.id, multiaddrs: [multiaddr('/ip4/10.2.0.5/tcp/4001')] },
      { id: others[2]!.id, multiaddrs: [multiaddr('/ip4/10.2.0.6/tcp/4001')] }
    ]
    const { d, seen } = make(node, {
      privateKey: others[23]!.key,
      trackers: [ft.url],
      stateDir: dir,
      bootstrap: [full('/ip4/10.2.0.4/tcp/4001', self)],
      lookupInterval: 50
    })
    await d.start()
    await waitFor('tracker and dht peers', () => ids(seen, 'tracker').length > 0 && ids(seen, 'dht').length > 0, 3_000)
    await d.lookup()
    expect(ids(seen)).not.toContain(self.id.toString())
    expect(ids(seen, 'tracker')).toEqual([others[1]!.id.toString()])
    expect(ids(seen, 'dht')).toContain(others[2]!.id.toString())
    expect(seen.every(s => s.peers.every(p => p.multiaddrs.length > 0))).toBe(true)
  })

  // a bootstrap address that is only `/p2p/<id>` has the bare address "/": no address to pass on
  it('does not pass on a bootstrap peer reached on an address with no transport part', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    const bare = `/p2p/${others[3]!.id.toString()}`
    node.reachable.add(bare)
    const { d, seen } = make(node, { bootstrap: [bare], dht: false })
    await d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(seen).toEqual([])
  })
})

describe('Discovery: lifecycle', () => {
  it('start is idempotent, stop is idempotent, and never starts again once stopped', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    const ok = full('/ip4/10.0.0.1/tcp/4001', others[0]!)
    node.reachable.add(ok)
    const { d } = make(node, { bootstrap: [ok], wantPeers: () => false })
    await Promise.all([d.start(), d.start()])
    await d.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(node.provides).toBe(1)
    expect(node.dials).toEqual([ok])
    await Promise.all([d.stop(), d.stop()])
    await d.stop()
    expect(node.cancelReprovides).toBe(1)
    await d.start()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(node.provides).toBe(1)
    expect(node.dials).toEqual([ok])
  })

  it('stop before start: start does nothing', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    const { d } = make(node, { bootstrap: [full('/ip4/10.0.0.1/tcp/4001', others[0]!)] })
    await d.stop()
    await d.start()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(node.provides + node.dials.length + node.findSignals.length).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('stop while start reads the cache: nothing is dialled', async () => {
    const dir = await stateDir()
    await cacheFile(dir, [{ peerId: others[0]!.id.toString(), multiaddrs: ['/ip4/10.0.0.1/tcp/4001'] }])
    const node = new FakeNode(self)
    const { d } = make(node, { stateDir: dir, bootstrap: [full('/ip4/10.0.0.2/tcp/4001', others[1]!)], dht: false })
    const starting = d.start()
    await d.stop()
    await starting
    await settle()
    expect(node.dials).toEqual([])
  })

  it('stop leaves no timer behind', async () => {
    fakeTimers()
    const dir = await stateDir()
    const node = new FakeNode(self)
    const ok = full('/ip4/10.0.0.1/tcp/4001', others[0]!)
    node.reachable.add(ok)
    const { d } = make(node, { bootstrap: [ok], stateDir: dir, lookupInterval: 100 })
    await d.start()
    await vi.advanceTimersByTimeAsync(3_000)
    expect(vi.getTimerCount()).toBeGreaterThan(0)
    await d.stop()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('stop aborts the DHT lookup and the bootstrap dials in flight; what they find later is not emitted', async () => {
    fakeTimers()
    const node = new FakeNode(self)
    node.hangDials = true
    const addr = full('/ip4/10.0.0.1/tcp/4001', others[0]!)
    node.reachable.add(addr)
    let open!: () => void
    node.findGate = new Promise<void>(resolve => { open = resolve })
    node.providers = [{ id: others[1]!.id, multiaddrs: [multiaddr('/ip4/10.0.0.2/tcp/4001')] }]
    const { d, seen, logs } = make(node, { bootstrap: [addr] })
    await d.start()
    await vi.advanceTimersByTimeAsync(1_000)
    expect(node.dialSignals).toHaveLength(1)
    expect(node.findSignals).toHaveLength(1)
    expect(node.dialSignals[0]!.aborted).toBe(false)
    expect(node.findSignals[0]!.aborted).toBe(false)
    // a lookup already running: a second one is not started
    const second = d.lookup()
    await second
    expect(node.findSignals).toHaveLength(1)
    const stopping = d.stop()
    expect(node.dialSignals[0]!.aborted).toBe(true)
    expect(node.findSignals[0]!.aborted).toBe(true)
    open()
    await stopping
    await settle()
    expect(seen).toEqual([])
    expect(logs.filter(l => l.startsWith('bootstrap failed') || l.startsWith('dht lookup failed'))).toEqual([])
    await d.lookup()
    expect(node.findSignals).toHaveLength(1)
  })
})

// --- components passed in ---------------------------------------------------------------------

/** A tracker announcer whose status the test sets; it emits the peers the test hands it. */
class FakeAnnouncer extends TypedEventEmitter<TrackerAnnouncerEvents> implements DiscoveryAnnouncer {
  status: 'pending' | 'ok' | 'down' = 'pending'
  swarm: { seeders: number, leechers: number } | undefined
  readonly calls: string[] = []
  start (): void { this.calls.push('start') }
  completed (): void { this.calls.push('completed') }
  async stop (): Promise<void> { this.calls.push('stop') }
  answer (peers: PeerAddress[]): void { this.safeDispatchEvent('peers', { detail: peers }) }
}

/** A DHT that answers at once: `reachable` for any bootstrap, `providers` for any lookup. */
class FakeDht implements DiscoveryDht {
  routingTableSize = 3
  provided = false
  readonly calls: string[] = []
  readonly bootstraps: string[][] = []
  lookups = 0
  reachable: PeerAddress[] = []
  providers: PeerAddress[] = []
  start (): void { this.calls.push('start') }
  stop (): void { this.calls.push('stop') }
  async bootstrap (addrs: string[]): Promise<PeerAddress[]> {
    this.bootstraps.push(addrs)
    return this.reachable
  }

  async findProviders (): Promise<PeerAddress[]> {
    this.lookups++
    return this.providers
  }
}

class FakeCache implements DiscoveryCache {
  stored: PeerAddress[] = []
  /** what each save was given (the peer book's reached peers), without the times */
  readonly saves: PeerAddress[][] = []
  async load (): Promise<PeerAddress[]> { return this.stored }
  async save (reached: ReachedPeer[] = []): Promise<void> { this.saves.push(reached.map(({ peerId, multiaddrs }) => ({ peerId, multiaddrs }))) }
}

const at = (k: Key, ...addrs: string[]): PeerAddress => ({ peerId: k.id.toString(), multiaddrs: addrs })

describe('Discovery: components passed in', () => {
  /** setTimeout faked, the clock injected: both moved together, 100 ms at a time */
  function clock (): { now: () => number, advance: (ms: number) => Promise<void> } {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
    let t = 5_000_000
    return {
      now: () => t,
      advance: async (ms) => {
        if (ms === 0) await vi.advanceTimersByTimeAsync(0)
        for (let left = ms; left > 0; left -= 100) {
          t += Math.min(100, left)
          await vi.advanceTimersByTimeAsync(Math.min(100, left))
        }
      }
    }
  }

  it('uses the announcers given: started, told of completion, stopped; their peers come out as tracker', async () => {
    const [up, down] = [new FakeAnnouncer(), new FakeAnnouncer()]
    const { d, seen } = make(new FakeNode(self), { trackers: ['http://unused.invalid/announce'], privateKey: undefined, dht: false }, { announcers: [up, down], dht: new FakeDht() })
    expect(d.status().tracker).toBe('pending,pending')
    await d.start()
    up.status = 'ok'
    down.status = 'down'
    expect(d.status().tracker).toBe('ok,down')
    expect(d.trackersUp).toBe(true)
    up.answer([at(others[0]!, '/ip4/10.3.0.1/tcp/4001'), at(self, '/ip4/10.3.0.2/tcp/4001')])
    expect(seen).toEqual([{ source: 'tracker', peers: [at(others[0]!, '/ip4/10.3.0.1/tcp/4001')] }])
    d.completed()
    await d.stop()
    expect(up.calls).toEqual(['start', 'completed', 'stop'])
    expect(down.calls).toEqual(['start', 'completed', 'stop'])
  })

  it('the swarm\'s seeders and leechers: none until a tracker counted them, then the largest count of any', async () => {
    const [a, b, c] = [new FakeAnnouncer(), new FakeAnnouncer(), new FakeAnnouncer()]
    const { d } = make(new FakeNode(self), { trackers: ['http://unused.invalid/announce'], privateKey: undefined, dht: false }, { announcers: [a, b, c], dht: new FakeDht() })
    expect(d.status()).not.toHaveProperty('seeders')
    expect(d.status()).not.toHaveProperty('leechers')
    a.swarm = { seeders: 1, leechers: 7 }
    expect(d.status()).toMatchObject({ seeders: 1, leechers: 7 })
    // each tracker sees the peers that announce to it: the largest count of each
    b.swarm = { seeders: 3, leechers: 2 }
    expect(d.status()).toMatchObject({ seeders: 3, leechers: 7 })
    await d.stop()
  })

  it('looks up on the injected clock: every lookupInterval while no tracker answers, 6x less often while one does', async () => {
    const c = clock()
    const runs = ['down', 'ok'].map(status => {
      const a = new FakeAnnouncer()
      a.status = status as 'down' | 'ok'
      const dht = new FakeDht()
      return { dht, ...make(new FakeNode(self), { lookupInterval: 100 }, { announcers: [a], dht, now: c.now }) }
    })
    await Promise.all(runs.map(async r => { await r.d.start() }))
    await c.advance(999)
    expect(runs.map(r => r.dht.lookups)).toEqual([0, 0])
    // the first tick, 1 s after start, looks up in both; then 100 ms apart while down, 600 ms while up
    await c.advance(1)
    expect(runs.map(r => r.dht.lookups)).toEqual([1, 1])
    await c.advance(1_200)
    expect(runs.map(r => r.dht.lookups)).toEqual([13, 3])
  })

  it('does not look up while it wants no peers, and its DHT is started and stopped with it', async () => {
    const c = clock()
    const dht = new FakeDht()
    const { d } = make(new FakeNode(self), { wantPeers: () => false, lookupInterval: 100 }, { dht, now: c.now })
    await d.start()
    await c.advance(5_000)
    expect(dht.lookups).toBe(0)
    expect(d.status().dht).toEqual({ routingTable: 3, provided: false, mode: 'auto' })
    await d.stop()
    expect(dht.calls).toEqual(['start', 'stop'])
  })

  it('the cache given: its peers are dialled (two addresses each), those that answer come out as cache; saved on stop', async () => {
    const c = clock()
    const dht = new FakeDht()
    const cache = new FakeCache()
    const book = new PeerBook({ self: self.id.toString(), now: c.now })
    const cached = at(others[4]!, '/ip4/10.4.0.1/tcp/4001', '/ip4/10.4.0.2/tcp/4001', '/ip4/10.4.0.3/tcp/4001')
    cache.stored = [cached]
    dht.reachable = [at(others[4]!, '/ip4/10.4.0.1/tcp/4001')]
    const { d, seen } = make(new FakeNode(self), { wantPeers: () => false }, { dht, cache, book, now: c.now })
    expect(await d.cachedPeers()).toEqual([cached])
    await d.start()
    await c.advance(0)
    expect(dht.bootstraps).toEqual([[full('/ip4/10.4.0.1/tcp/4001', others[4]!), full('/ip4/10.4.0.2/tcp/4001', others[4]!)]])
    expect(seen).toEqual([{ source: 'cache', peers: dht.reachable }])
    // in the book as heard of from the cache, at the address that answered
    expect(book.get(others[4]!.id.toString())).toMatchObject({ source: 'cache', multiaddrs: ['/ip4/10.4.0.1/tcp/4001'], reachedAt: undefined })
    // only bootstrap peers are marked reached by Discovery itself; the peer marks the others it reached
    expect(book.reachedPeers()).toEqual([])
    book.reached(others[4]!.id.toString())
    await d.stop()
    expect(cache.saves).toEqual([dht.reachable])
  })

  it('bootstrap peers that answer come out as bootstrap, are remembered in the cache, and a lookup follows at once', async () => {
    const c = clock()
    const dht = new FakeDht()
    const cache = new FakeCache()
    const boot = full('/ip4/10.5.0.1/tcp/4001', others[5]!)
    dht.reachable = [at(others[5]!, '/ip4/10.5.0.1/tcp/4001')]
    dht.providers = [at(others[6]!, '/ip4/10.5.0.2/tcp/4001')]
    const book = new PeerBook({ self: self.id.toString(), now: c.now })
    const { d, seen } = make(new FakeNode(self), { bootstrap: [boot] }, { dht, cache, book, now: c.now })
    await d.start()
    await c.advance(0)
    expect(dht.bootstraps).toEqual([[boot]])
    expect(book.reachedPeers()).toEqual(dht.reachable.map(p => ({ ...p, lastSeen: c.now() })))
    expect(seen).toEqual([{ source: 'bootstrap', peers: dht.reachable }, { source: 'dht', peers: dht.providers }])
    // the DHT's providers are known, not reached
    expect(book.get(others[6]!.id.toString())).toMatchObject({ source: 'dht', reachedAt: undefined })
    await d.stop()
    expect(cache.saves).toEqual([dht.reachable])
  })
})
