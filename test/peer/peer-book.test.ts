/**
 * A Peer's book of peers across two runs, on real libp2p nodes on 127.0.0.1 (no DHT): the seeder
 * the tracker named and the leecher reached goes to the peer cache when the run ends, and the
 * next run, told of no tracker and no peer, joins the swarm from the cache alone.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { PeerCache } from '../../src/discovery/peer-cache.js'
import type { PeerSource } from '../../src/discovery/types.js'
import { withoutPeerId } from '../../src/net/addr.js'
import { Peer, type PeerOptions } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'

describe('Peer: the peers it knows, across runs', () => {
  let dir: string
  let tracker: TrackerServer
  const peers: Peer[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-peer-book-'))
    tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 1, minInterval: 1, statsInterval: 0, log: () => {} })
    await tracker.start()
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await tracker.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('the seeder the tracker named is in the peer cache after the run; the next run joins from the cache alone', async () => {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(300_000))
    const base: PeerOptions = { listen: LOOPBACK, dht: false, progressInterval: 0 }
    const state = join(dir, 'state')
    const seeder = await Peer.seed(file, { ...base, trackers: [tracker.announceUrl], stateDir: false })
    peers.push(seeder)
    await seeder.start()

    /** how the leecher came to know the seeder, at each session with it (a reconnect may make two) */
    const sources = async (leecher: Peer): Promise<Set<PeerSource>> => {
      peers.push(leecher)
      const seen: PeerSource[] = []
      leecher.addEventListener('peer:connect', (evt) => { if (evt.detail.peerId === seeder.peerId) seen.push(evt.detail.source) })
      const done = completed(leecher)
      await leecher.start()
      expect(await sha256File((await done).path)).toBe(await sha256File(file))
      await leecher.stop()
      return new Set(seen)
    }

    // the first run hears of the seeder from the tracker and has a session with it
    const first = await Peer.get(seeder.cid.toString(), join(dir, 'first'), { ...base, trackers: [tracker.announceUrl], stateDir: state })
    expect(await sources(first)).toEqual(new Set(['tracker']))
    const cached = await new PeerCache({ dir: state }).load()
    expect(cached.map(p => p.peerId)).toEqual([seeder.peerId])
    expect(cached[0].multiaddrs).toEqual(expect.arrayContaining(seeder.multiaddrs.map(withoutPeerId).slice(0, 1)))

    // the second run is told of nobody: the cache is its one source
    const second = await Peer.get(seeder.cid.toString(), join(dir, 'second'), { ...base, stateDir: state })
    expect(await sources(second)).toEqual(new Set(['cache']))
  }, 60_000)
})
