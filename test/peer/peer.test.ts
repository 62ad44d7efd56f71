/**
 * Peer without a network: a fake libp2p node given as `libp2p` (it records the protocols the
 * peer registers and never connects anywhere), files in a temp dir, no DHT, no peer cache. What
 * is tested is the Peer's own work: checking its arguments, reusing a manifest, which pieces a
 * seeder serves, a download that finds its file already there, events, and stopping (by stop()
 * or by the signal) without leaving anything on a program's node. Transfers between peers are
 * test/api's and test/integration's.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { serviceCapabilities, type Libp2p, type PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { Libp2pNodeError, NoSwarmSourcesError, OutputDirError, UsageError } from '../../src/errors.js'
import { readManifestFile } from '../../src/storage/manifest-file.js'
import { MANIFEST_PROTOCOL } from '../../src/exchange/exchange.js'
import { Peer, type PeerProgress, type SeedOptions } from '../../src/peer.js'
import { WIRE_PROTOCOL } from '../../src/wire/codec.js'

/** A libp2p node as far as a Peer uses it without peers: protocols, events, addresses, status. */
class FakeLibp2p {
  status: 'started' | 'stopped' = 'stopped'
  readonly protocols = new Set<string>()
  readonly calls: string[] = []
  readonly listeners = new Map<string, number>()
  readonly services = { identify: { [serviceCapabilities]: ['@libp2p/identify'] } }

  constructor (readonly peerId: PeerId) {}

  asLibp2p (): Libp2p {
    return this as unknown as Libp2p
  }

  async start (): Promise<void> {
    this.calls.push('start')
    this.status = 'started'
  }

  async stop (): Promise<void> {
    this.calls.push('stop')
    this.status = 'stopped'
  }

  getProtocols (): string[] {
    return [...this.protocols]
  }

  async handle (protocol: string): Promise<void> {
    if (this.protocols.has(protocol)) throw Object.assign(new Error(`${protocol} is handled already`), { name: 'DuplicateProtocolHandlerError' })
    this.protocols.add(protocol)
  }

  async unhandle (protocol: string): Promise<void> {
    this.protocols.delete(protocol)
  }

  getMultiaddrs (): Multiaddr[] {
    return [multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${this.peerId.toString()}`)]
  }

  getConnections (): unknown[] {
    return []
  }

  async dial (): Promise<never> {
    throw new Error('connection refused')
  }

  addEventListener (type: string): void {
    this.listeners.set(type, (this.listeners.get(type) ?? 0) + 1)
  }

  removeEventListener (type: string): void {
    this.listeners.set(type, (this.listeners.get(type) ?? 0) - 1)
  }
}

let nodeId: PeerId
let otherId: PeerId
beforeAll(async () => {
  nodeId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  otherId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
})

let dir: string
let node: FakeLibp2p
const peers: Peer[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bitswarm-peer-'))
  node = new FakeLibp2p(nodeId)
})

afterEach(async () => {
  await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
  await rm(dir, { recursive: true, force: true })
})

/** No DHT, no peer cache, no progress timer: only what a test turns on. */
function options (over: SeedOptions = {}): SeedOptions {
  return { libp2p: node.asLibp2p(), dht: false, stateDir: false, progressInterval: 0, ...over }
}

/** somewhere to look for the swarm (a get needs one); it never answers */
const nowhere = (): string[] => [`/ip4/127.0.0.1/tcp/9/p2p/${otherId.toString()}`]

async function file (name: string, size: number): Promise<{ path: string, data: Buffer }> {
  const path = join(dir, name)
  const data = randomBytes(size)
  await writeFile(path, data)
  return { path, data }
}

async function seeder (path: string, over: SeedOptions = {}): Promise<Peer> {
  const p = await Peer.seed(path, options(over))
  peers.push(p)
  return p
}

describe('Peer.seed', () => {
  it('hashes the file and writes its manifest beside it; started, it serves every piece', async () => {
    const { path } = await file('a.bin', 100_000)
    const p = await seeder(path)
    expect(p.manifestPath).toBe(`${path}.bitswarm`)
    expect((await readFile(`${path}.bitswarm`)).byteLength).toBeGreaterThan(0)
    const manifests: string[] = []
    p.addEventListener('manifest', (evt) => { manifests.push(evt.detail.cid) })
    expect(p.phase).toBe('manifest')
    await p.start()
    expect(manifests).toEqual([p.cid.toString()])
    expect(p.phase).toBe('seeding')
    const s = p.stats()
    expect(s.have).toBe(s.pieces)
    expect(s.left).toBe(0)
    expect(node.getProtocols().sort()).toEqual([MANIFEST_PROTOCOL, WIRE_PROTOCOL].sort())
  })

  it('the peer\'s identity and addresses are its node\'s', async () => {
    const { path } = await file('a.bin', 1000)
    const p = await seeder(path)
    expect(p.libp2p).toBe(node)
    expect(p.peerId).toBe(nodeId.toString())
    expect(p.multiaddrs).toEqual([`/ip4/127.0.0.1/tcp/4001/p2p/${nodeId.toString()}`])
    expect(p.trackerStatus).toBe('none')
  })

  it('a manifest written earlier is reused (the same CID), and only the pieces that still match are served', async () => {
    const { path } = await file('a.bin', 100_000)
    const first = await seeder(path)
    await first.stop()
    // the file changes under the manifest: one byte of the second piece
    const fh = await open(path, 'r+')
    await fh.write(Uint8Array.of(0xff ^ (await readFile(path))[20_000]), 0, 1, 20_000)
    await fh.close()
    const logs: string[] = []
    const again = await seeder(path, { log: (m) => logs.push(m) })
    expect(again.cid.toString()).toBe(first.cid.toString())
    await again.start()
    const s = again.stats()
    expect(s.have).toBe(s.pieces - 1)
    expect(logs.some(l => l.includes(`1 of ${s.pieces} pieces do not match`))).toBe(true)
    await again.stop()
    // told to trust the file: every piece is served, unhashed
    const trusting = await seeder(path, { skipVerify: true })
    await trusting.start()
    expect(trusting.stats().have).toBe(s.pieces)
  })

  it('a missing file or one that is neither a file nor a folder is a UsageError', async () => {
    await expect(Peer.seed(join(dir, 'missing.bin'), options())).rejects.toBeInstanceOf(UsageError)
    await expect(Peer.seed('/dev/null', options())).rejects.toBeInstanceOf(UsageError)
  })

  it('a folder is seeded with a folder manifest written beside it', async () => {
    const folder = join(dir, 'album')
    await mkdir(join(folder, 'disc 1'), { recursive: true })
    await writeFile(join(folder, 'disc 1', 'a.bin'), Buffer.alloc(40_000, 1))
    await writeFile(join(folder, 'cover.txt'), 'cover')
    const peer = await Peer.seed(folder, options())
    expect(peer.manifestPath).toBe(`${folder}.bitswarm`)
    const { manifest } = await readManifestFile(`${folder}.bitswarm`)
    expect(manifest.version).toBe(2)
    expect(manifest.version === 2 ? manifest.files.map(f => f.path.join('/')) : []).toEqual(['cover.txt', 'disc 1/a.bin'])
    await peer.stop()
    // again: the manifest is reused, same CID
    const again = await Peer.seed(folder, options())
    expect(again.cid.toString()).toBe(peer.cid.toString())
    await again.stop()
  })

  it('a node that runs a peer already is refused', async () => {
    const { path } = await file('a.bin', 1000)
    node.protocols.add(WIRE_PROTOCOL)
    await expect(Peer.seed(path, options())).rejects.toBeInstanceOf(Libp2pNodeError)
  })
})

describe('Peer.get', () => {
  it('a target that is neither a manifest file nor a CID is a UsageError', async () => {
    await expect(Peer.get('not-a-cid', join(dir, 'out'), options({ bootstrap: nowhere() }))).rejects.toBeInstanceOf(UsageError)
  })

  it('nowhere to look for the swarm: NoSwarmSourcesError', async () => {
    const { path } = await file('a.bin', 1000)
    const s = await seeder(path)
    await expect(Peer.get(s.cid.toString(), join(dir, 'out'), options())).rejects.toBeInstanceOf(NoSwarmSourcesError)
  })

  it('an output directory that cannot be made: OutputDirError', async () => {
    const { path } = await file('a.bin', 1000)
    const s = await seeder(path)
    // a file where a directory would have to be
    await expect(Peer.get(s.cid.toString(), join(path, 'out'), options({ bootstrap: nowhere() }))).rejects.toBeInstanceOf(OutputDirError)
  })

  it('before the manifest is known: phase manifest, nothing known of the download', async () => {
    const { path } = await file('a.bin', 1000)
    const s = await seeder(path)
    await s.stop()
    const p = await Peer.get(s.cid.toString(), join(dir, 'out'), options({ bootstrap: nowhere() }))
    peers.push(p)
    await p.start()
    expect(p.phase).toBe('manifest')
    expect(p.manifest).toBeUndefined()
    expect(p.stats()).toMatchObject({ peers: 0, have: 0, pieces: 0, downloaded: 0, left: Number.MAX_SAFE_INTEGER })
    // the manifest protocol is served (we have nothing to serve yet), the wire protocol is not
    expect(node.getProtocols()).toEqual([MANIFEST_PROTOCOL])
  })

  it('the file already complete in the output directory: verified, seeded, complete at once', async () => {
    const { path } = await file('a.bin', 100_000)
    const s = await seeder(path)
    await s.stop()
    const p = await Peer.get(s.manifestPath as string, dir, options({ bootstrap: nowhere() }))
    peers.push(p)
    const completes: Array<{ cid: string, path: string, bytes: number }> = []
    p.addEventListener('complete', (evt) => { completes.push(evt.detail) })
    await p.start()
    expect(completes).toEqual([{ cid: s.cid.toString(), path, bytes: 100_000 }])
    expect(p.phase).toBe('seeding')
    expect(p.stats().left).toBe(0)
  })

  it('another file in the way of the download: start rejects, and leaves nothing on the node', async () => {
    const { path } = await file('a.bin', 100_000)
    const s = await seeder(path)
    await s.stop()
    const out = join(dir, 'out')
    const p = await Peer.get(s.manifestPath as string, out, options({ bootstrap: nowhere() }))
    peers.push(p)
    await writeFile(join(out, 'a.bin'), randomBytes(100_000))
    await expect(p.start()).rejects.toThrow(/already exists and is not this manifest's file/)
    expect(node.getProtocols()).toEqual([])
    expect(node.calls).toEqual(['start'])
  })
})

describe('Peer: events and stopping', () => {
  it('progress events while it runs, with the counters, the phase and the CID', async () => {
    const { path } = await file('a.bin', 1000)
    const p = await seeder(path, { progressInterval: 10 })
    const seen: PeerProgress[] = []
    p.addEventListener('progress', (evt) => { seen.push(evt.detail) })
    await p.start()
    await vi.waitFor(() => { expect(seen.length).toBeGreaterThanOrEqual(2) }, { timeout: 2_000, interval: 5 })
    expect(seen[0]).toMatchObject({ cid: p.cid.toString(), phase: 'seeding', left: 0, peers: 0 })
    await p.stop()
    const n = seen.length
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(seen).toHaveLength(n)
  })

  it('stop unregisters the protocols and the listeners, leaves a program\'s node running, and is one promise', async () => {
    const { path } = await file('a.bin', 1000)
    const p = await seeder(path)
    await p.start()
    expect(node.listeners.get('peer:identify')).toBe(1)
    const [a, b] = [p.stop(), p.stop()]
    await Promise.all([a, b])
    expect(node.getProtocols()).toEqual([])
    expect(node.listeners.get('peer:identify')).toBe(0)
    expect(node.calls).toEqual(['start'])
    expect(node.status).toBe('started')
    // stopped for good: a start now rejects
    await expect(p.start()).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('a program\'s node that is running already is not started again', async () => {
    const { path } = await file('a.bin', 1000)
    node.status = 'started'
    const p = await seeder(path)
    await p.start()
    expect(node.calls).toEqual([])
  })

  it('aborting the signal stops the peer; a signal aborted before anything starts nothing', async () => {
    const { path } = await file('a.bin', 1000)
    const controller = new AbortController()
    const p = await seeder(path, { signal: controller.signal })
    await p.start()
    controller.abort(new Error('enough'))
    await vi.waitFor(() => { expect(node.getProtocols()).toEqual([]) }, { timeout: 2_000, interval: 5 })
    const reason = new Error('never mind')
    await expect(Peer.seed(path, options({ signal: AbortSignal.abort(reason) }))).rejects.toBe(reason)
  })

  it('stopped while starting: start rejects with the signal\'s reason, and nothing is left on the node', async () => {
    const { path } = await file('a.bin', 1000)
    const controller = new AbortController()
    const p = await seeder(path, { signal: controller.signal })
    const reason = new Error('stop now')
    // aborted as the manifest is announced, in the middle of start()
    p.addEventListener('manifest', () => { controller.abort(reason) })
    await expect(p.start()).rejects.toBe(reason)
    expect(node.getProtocols()).toEqual([])
  })
})
