/**
 * Relays on 127.0.0.1, real nodes: a seeder that holds a reservation on our relay is reached
 * through it by a leecher that knows only its circuit address, and the file crosses the relay;
 * a stranger's relay (circuit relay v2's default limits: 128 KiB, 2 minutes) carries no swarm
 * session. Across real NATs: test/netns.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { formatLink } from '../../src/link/link.js'
import { fullAddrs, libp2pDefaults } from '../../src/node.js'
import { multiaddr } from '@multiformats/multiaddr'
import { startRelay } from '../../src/net/relay.js'
import { Peer, type PeerOptions } from '../../src/peer.js'
import type { PeerVia } from '../../src/swarm/sessions.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'

describe('through a relay', () => {
  let dir: string
  const peers: Peer[] = []
  const nodes: Libp2p[] = []
  const base: PeerOptions = { listen: LOOPBACK, stateDir: false, dht: false }

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'bitswarm-relay-')) })
  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await Promise.all(nodes.splice(0).map(async n => { await n.stop() }))
    await rm(dir, { recursive: true, force: true })
  })

  /** A seeder with a reservation on `relay`, and a leecher told only of its circuit address. */
  async function throughRelay (relay: Libp2p): Promise<{ seeder: Peer, leecher: Peer, vias: PeerVia[], file: string }> {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(1024 * 1024 + 123))
    const seeder = await Peer.seed(file, { ...base, relays: [fullAddrs(relay)[0]] })
    peers.push(seeder)
    await seeder.start()
    const circuit = seeder.multiaddrs.find(a => a.includes('/p2p-circuit'))
    expect(circuit, `the seeder's addresses: ${seeder.multiaddrs.join(' ')}`).toBeDefined()
    expect(seeder.reachability).toBe('relayed')
    const link = formatLink({ cid: seeder.cid, trackers: [], peers: [circuit as string] })
    const leecher = await Peer.get(link, join(dir, 'out'), base)
    peers.push(leecher)
    const vias: PeerVia[] = []
    leecher.addEventListener('peer:connect', (evt) => { vias.push(evt.detail.via) })
    return { seeder, leecher, vias, file }
  }

  it("our relay carries the file; the leecher's session says it is relayed", async () => {
    const relay = await startRelay({ listen: LOOPBACK })
    nodes.push(relay)
    const { leecher, vias, file } = await throughRelay(relay)
    const done = completed(leecher)
    await leecher.start()
    const { path } = await done
    expect(await sha256File(path)).toBe(await sha256File(file))
    // the first session ran over the relay (DCUtR may add a direct one on loopback later)
    expect(vias[0]).toBe('relayed')
  }, 30_000)

  it('a direct connection to a peer reached through the relay takes its session over (what a DCUtR upgrade does)', async () => {
    const relay = await startRelay({ listen: LOOPBACK })
    nodes.push(relay)
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(1024 * 1024))
    const seeder = await Peer.seed(file, { ...base, relays: [fullAddrs(relay)[0]] })
    peers.push(seeder)
    await seeder.start()
    const circuit = seeder.multiaddrs.find(a => a.includes('/p2p-circuit')) as string
    const direct = seeder.multiaddrs.find(a => !a.includes('/p2p-circuit')) as string
    // the leecher on a node of the test's own, to dial the seeder directly midway
    const node = await createLibp2p(libp2pDefaults({ listen: LOOPBACK, dht: 'off' }))
    nodes.push(node)
    const leecher = await Peer.get(formatLink({ cid: seeder.cid, trackers: [], peers: [circuit] }), join(dir, 'out'), { ...base, libp2p: node, maxDownloadRate: 256 * 1024 })
    peers.push(leecher)
    const vias: PeerVia[] = []
    const upgraded = new Promise<void>(resolve => {
      leecher.addEventListener('peer:connect', (evt) => {
        vias.push(evt.detail.via)
        if (evt.detail.via === 'relayed') void node.dial(multiaddr(direct)).catch(() => {})
        if (evt.detail.via === 'hole-punched') resolve()
      })
    })
    const done = completed(leecher)
    await leecher.start()
    await upgraded
    expect(vias).toEqual(['relayed', 'hole-punched'])
    expect(leecher.stats().reached).toMatchObject({ relayed: 0, 'hole-punched': 1 })
    const { path } = await done
    expect(await sha256File(path)).toBe(await sha256File(file))
  }, 30_000)

  it("a stranger's relay (128 KiB, 2 minutes per connection) is for signalling only: no session runs over it", async () => {
    const stranger = await createLibp2p({
      addresses: { listen: LOOPBACK },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), relay: circuitRelayServer() }
    })
    nodes.push(stranger)
    const { leecher, vias } = await throughRelay(stranger)
    await leecher.start()
    // long enough for the dial through the relay, the refusal, and a DCUtR attempt
    await new Promise(resolve => setTimeout(resolve, 3000))
    // the manifest crossed it (signalling), no piece did
    expect(leecher.stats().pieces).toBeGreaterThan(0)
    expect(vias).not.toContain('relayed')
    if (vias.length === 0) expect(leecher.stats().have).toBe(0)
  }, 30_000)
})
