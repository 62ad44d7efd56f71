/**
 * The library API (src/index.ts) in one process on 127.0.0.1: seed and get with events and
 * signals, a peer on a libp2p node the program built (and what such a node must have), a tracker
 * run from a program.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createTracker, get, libp2pDefaults, Libp2pNodeError, NoSwarmSourcesError, Peer, seed, type PeerEvent, type PeerInfo, type PieceMap
} from '../../src/index.js'
import { PEER_SOURCES } from '../../src/discovery/types.js'
import { MANIFEST_PROTOCOL } from '../../src/exchange/exchange.js'
import { WIRE_PROTOCOL } from '../../src/wire/codec.js'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const QUIET = { listen: LOOPBACK, stateDir: false as const, dht: false }

describe('library API', () => {
  let dir: string
  const peers: Peer[] = []
  const nodes: Libp2p[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-api-'))
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await Promise.all(nodes.splice(0).map(async n => { await Promise.resolve(n.stop()).catch(() => {}) }))
    await rm(dir, { recursive: true, force: true })
  })

  async function file (name: string, size: number): Promise<{ path: string, data: Buffer }> {
    const path = join(dir, name)
    const data = randomBytes(size)
    await writeFile(path, data)
    return { path, data }
  }

  /** A node of the program's own: bitswarm's defaults, or bare TCP + Noise + Yamux with some services. */
  async function programNode (services: 'defaults' | 'none' | 'identify'): Promise<Libp2p> {
    if (services === 'defaults') {
      const node = await createLibp2p(libp2pDefaults({ listen: LOOPBACK }))
      nodes.push(node)
      return node
    }
    const base = { addresses: { listen: LOOPBACK }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] }
    const node: Libp2p = services === 'identify' ? await createLibp2p({ ...base, services: { identify: identify() } }) : await createLibp2p(base)
    nodes.push(node)
    return node
  }

  it('seeds and gets a file, with typed events from the first one on', async () => {
    const { path, data } = await file('a.bin', 700_000)
    const seeder = await seed(path, QUIET)
    peers.push(seeder)
    const events: PeerEvent[] = []
    const result = await get(seeder.cid.toString(), join(dir, 'out'), {
      ...QUIET,
      bootstrap: seeder.multiaddrs,
      progressInterval: 50,
      onProgress: (e) => { events.push(e) }
    })
    expect(result).toMatchObject({ cid: seeder.cid.toString(), path: join(dir, 'out', 'a.bin'), bytes: 700_000 })
    expect(result.stats.left).toBe(0)
    expect(Buffer.compare(await readFile(result.path), data)).toBe(0)
    const types = events.map(e => e.type)
    // progress events may come first (while the manifest is being fetched), then the manifest
    expect(types.find(t => t !== 'progress')).toBe('manifest')
    expect(types).toContain('peer:connect')
    expect(types.at(-1)).toBe('complete')
    // one last progress event just before completion, with everything there
    const last = events.at(-2)
    expect(last?.type).toBe('progress')
    if (last?.type === 'progress') expect(last.detail).toMatchObject({ phase: 'seeding', left: 0, have: last.detail.pieces })
  })

  it('peerInfos and pieceMap: each connected peer, and the pieces at a glance', async () => {
    const { path } = await file('w.bin', 800_000)
    const seeder = await seed(path, QUIET)
    peers.push(seeder)
    // slow enough to be looked at halfway
    const leecher = await Peer.get(seeder.cid.toString(), join(dir, 'out'), { ...QUIET, bootstrap: seeder.multiaddrs, maxDownloadRate: 200 * 1024 })
    peers.push(leecher)
    // no manifest yet: nobody, and no pieces
    expect(leecher.peerInfos()).toEqual([])
    expect(leecher.pieceMap()).toMatchObject({ pieces: 0, inFlight: [], availability: new Uint8Array(0) })
    await leecher.start()
    await expect.poll(() => leecher.pieceMap().have.count(), { timeout: 10_000 }).toBeGreaterThan(1)
    await expect.poll(() => leecher.peerInfos()[0]?.downloadRate ?? 0, { timeout: 5_000 }).toBeGreaterThan(0)

    const infos: PeerInfo[] = leecher.peerInfos()
    expect(infos).toHaveLength(1)
    expect(infos[0]).toMatchObject({ peerId: seeder.peerId, via: 'direct', progress: 1, amInterested: true, peerChoking: false, snubbed: false })
    expect(PEER_SOURCES).toContain(infos[0].source)
    expect(infos[0].address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    expect(Object.keys(infos[0]).sort()).toEqual(['address', 'amChoking', 'amInterested', 'downloadRate', 'optimistic', 'peerChoking', 'peerId', 'peerInterested', 'progress', 'snubbed', 'source', 'uploadRate', 'via'])

    const map: PieceMap = leecher.pieceMap()
    const pieces = leecher.manifest == null ? 0 : Math.ceil(leecher.manifest.length / leecher.manifest.pieceLength)
    expect(map.pieces).toBe(pieces)
    expect(map.have.size).toBe(pieces)
    expect(map.have.isComplete()).toBe(false)
    // the one peer (the seed) has every piece
    expect([...map.availability]).toEqual(new Array(pieces).fill(1))
    for (const p of map.inFlight) expect(map.have.get(p)).toBe(false)
    expect([...map.inFlight].sort((a, b) => a - b)).toEqual(map.inFlight)
    // a copy: changing it changes nothing
    map.have.set(pieces - 1)
    map.availability[0] = 9
    expect(leecher.pieceMap().availability[0]).toBe(1)

    // and the seed's view of the leecher
    const back = seeder.peerInfos()
    expect(back).toHaveLength(1)
    expect(back[0]).toMatchObject({ peerId: leecher.peerId, source: 'incoming', peerInterested: true, amChoking: false, amInterested: false })
    expect(back[0].progress).toBeGreaterThan(0)
    expect(back[0].progress).toBeLessThan(1)
    expect(seeder.pieceMap().have.isComplete()).toBe(true)
  })

  it('get rejects with the signal\'s reason when aborted, and a signal aborted before starts nothing', async () => {
    const other = await file('other.bin', 1000)
    // a peer that does not have the manifest we ask for: get waits until aborted
    const seeder = await seed(other.path, QUIET)
    peers.push(seeder)
    const wanted = await file('wanted.bin', 1000)
    const { createManifest } = await import('../../src/index.js')
    const { cid } = await createManifest(wanted.path)
    const reason = new Error('enough')
    const controller = new AbortController()
    setTimeout(() => { controller.abort(reason) }, 500)
    const started = Date.now()
    await expect(get(cid.toString(), join(dir, 'out'), { ...QUIET, bootstrap: seeder.multiaddrs, signal: controller.signal })).rejects.toBe(reason)
    expect(Date.now() - started).toBeLessThan(5_000)
    await expect(get(cid.toString(), join(dir, 'out'), { ...QUIET, bootstrap: seeder.multiaddrs, signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    await expect(get(cid.toString(), join(dir, 'out'), QUIET)).rejects.toBeInstanceOf(NoSwarmSourcesError)
  })

  it('a seed stops when its signal aborts, node and all', async () => {
    const { path } = await file('s.bin', 1000)
    const controller = new AbortController()
    const seeder = await seed(path, { ...QUIET, signal: controller.signal })
    peers.push(seeder)
    expect(seeder.libp2p.status).toBe('started')
    controller.abort()
    await expect.poll(() => seeder.libp2p.status).toBe('stopped')
    await seeder.stop()
  })

  it('runs on a libp2p node the program built, and leaves it running and clean', async () => {
    const { path, data } = await file('n.bin', 300_000)
    const node = await programNode('defaults')
    const seeder = await seed(path, { ...QUIET, dht: true, libp2p: node })
    peers.push(seeder)
    expect(seeder.peerId).toBe(node.peerId.toString())
    expect(node.getProtocols()).toEqual(expect.arrayContaining([MANIFEST_PROTOCOL, WIRE_PROTOCOL]))
    // one bitswarm peer per node
    await expect(seed(path, { ...QUIET, libp2p: node })).rejects.toBeInstanceOf(Libp2pNodeError)
    const result = await get(seeder.cid.toString(), join(dir, 'out'), { ...QUIET, bootstrap: seeder.multiaddrs })
    expect(Buffer.compare(await readFile(result.path), data)).toBe(0)
    await seeder.stop()
    expect(node.status).toBe('started')
    expect(node.getProtocols()).not.toContain(MANIFEST_PROTOCOL)
    expect(node.getProtocols()).not.toContain(WIRE_PROTOCOL)
    // and the node can carry a peer again
    const again = await seed(path, { ...QUIET, libp2p: node })
    peers.push(again)
    expect(again.cid.toString()).toBe(seeder.cid.toString())
  })

  it('says what a program\'s node lacks', async () => {
    const { path } = await file('m.bin', 1000)
    const bare = await programNode('none')
    await expect(seed(path, { ...QUIET, libp2p: bare })).rejects.toThrow(/no identify service/)
    const withIdentify = await programNode('identify')
    await expect(seed(path, { ...QUIET, dht: true, libp2p: withIdentify })).rejects.toThrow(/no kad-dht service/)
    // announcing to a tracker needs the node's key, and only that node's key
    await expect(seed(path, { ...QUIET, libp2p: withIdentify, trackers: ['http://127.0.0.1:9/announce'] })).rejects.toThrow(/needs its privateKey/)
    await expect(seed(path, { ...QUIET, libp2p: withIdentify, privateKey: await generateKeyPair('Ed25519') })).rejects.toBeInstanceOf(Libp2pNodeError)
    // without the DHT, identify is enough
    const seeder = await seed(path, { ...QUIET, libp2p: withIdentify })
    peers.push(seeder)
    expect(seeder.discoveryStatus().dht.routingTable).toBe(0)
  })

  it('a tracker from a program: peers find each other through it; the signal stops it', async () => {
    const controller = new AbortController()
    const tracker = await createTracker({ port: 0, signal: controller.signal })
    const { path, data } = await file('t.bin', 200_000)
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createLibp2p(libp2pDefaults({ listen: LOOPBACK, privateKey }))
    nodes.push(node)
    const seeder = await seed(path, { ...QUIET, libp2p: node, privateKey, trackers: [tracker.announceUrl] })
    peers.push(seeder)
    const result = await get(seeder.cid.toString(), join(dir, 'out'), { ...QUIET, trackers: [tracker.announceUrl], signal: AbortSignal.timeout(30_000) })
    expect(Buffer.compare(await readFile(result.path), data)).toBe(0)
    const url = tracker.announceUrl
    controller.abort()
    await expect.poll(async () => await fetch(url).then(() => 'up', () => 'down')).toBe('down')
  })
})
