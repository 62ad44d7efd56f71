/**
 * The swarm without a tracker: real libp2p nodes on 127.0.0.1 in one process, each told the
 * address of one other peer only. A leecher that was never given the seeder's address finds it
 * through the Kademlia DHT and completes.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Peer, type PeerOptions } from '../../src/peer.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'


describe('no tracker at all', () => {
  let dir: string
  const peers: Peer[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-notracker-'))
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await rm(dir, { recursive: true, force: true })
  })

  it('6 peers, each bootstrapped with one other; a leecher finds the seeder through the DHT', async () => {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(2 * 1024 * 1024 + 777))
    // peer exchange is slowed to a crawl here, so the DHT is the only way to learn of others
    const base: PeerOptions = { listen: LOOPBACK, stateDir: false, pexInterval: 600_000, lookupInterval: 1000 }

    const seeder = await Peer.seed(file, base)
    peers.push(seeder)
    await seeder.start()

    // a chain of four more peers (each seeding a file of its own, so the seeder stays the only
    // source of ours): peer i knows only peer i-1, the first knows only the seeder
    let previous = seeder.multiaddrs[0]
    for (let i = 1; i <= 4; i++) {
      const other = join(dir, `other${i}.bin`)
      await writeFile(other, randomBytes(1000 + i))
      const m = await Peer.seed(other, { ...base, bootstrap: [previous] })
      peers.push(m)
      await m.start()
      previous = m.multiaddrs[0]
    }
    // the sixth: a leecher that knows only the last of the chain
    const leecher = await Peer.get(seeder.cid.toString(), join(dir, 'out'), { ...base, bootstrap: [previous] })
    peers.push(leecher)
    const fromDht: string[] = []
    leecher.addEventListener('peer:connect', (evt) => { if (evt.detail.source === 'dht') fromDht.push(evt.detail.peerId) })
    const done = completed(leecher)
    await leecher.start()
    const d = await done

    expect(await sha256File(d.path)).toBe(await sha256File(file))
    // the seeder was never named to the leecher: it came out of the DHT
    expect(fromDht).toEqual([seeder.peerId])
    expect(leecher.stats().downloadedFrom.dht).toBe(2 * 1024 * 1024 + 777)
    expect(leecher.discoveryStatus()).toMatchObject({ tracker: 'none' })
    expect(leecher.discoveryStatus().dht.routingTable).toBeGreaterThan(0)
  }, 90_000)

  it('a peer learns the other members by peer exchange alone', async () => {
    const file = join(dir, 'pex.bin')
    await writeFile(file, randomBytes(600_000))
    // no DHT here: gossip is the only way to hear of other members
    const base: PeerOptions = { listen: LOOPBACK, stateDir: false, pexInterval: 500, dht: false }
    // a slow seeder, so that b is still downloading when the gossip reaches it
    const seeder = await Peer.seed(file, { ...base, maxUploadRate: 200_000 })
    peers.push(seeder)
    await seeder.start()
    const a = await Peer.get(seeder.cid.toString(), join(dir, 'a'), { ...base, bootstrap: [seeder.multiaddrs[0]] })
    peers.push(a)
    await a.start()
    await completed(a)
    // b knows only the seeder; the seeder tells it about a
    const b = await Peer.get(seeder.cid.toString(), join(dir, 'b'), { ...base, bootstrap: [seeder.multiaddrs[0]] })
    peers.push(b)
    const fromPex: string[] = []
    b.addEventListener('peer:connect', (evt) => { if (evt.detail.source === 'pex') fromPex.push(evt.detail.peerId) })
    const done = completed(b)
    await b.start()
    const d = await done
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    expect(fromPex).toEqual([a.peerId])
    expect(b.stats().downloadedFrom.pex).toBeGreaterThan(0)
  }, 60_000)
})
