/**
 * Real libp2p nodes (TCP + Noise + Yamux on 127.0.0.1) and a real tracker on a real port, in one
 * process: a seeder and leechers that find each other through the tracker, fetch the manifest
 * by CID, trade pieces and end with byte-identical files.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'


describe('swarm over real libp2p nodes and a real tracker', () => {
  let dir: string
  let tracker: TrackerServer
  const peers: Peer[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-int-'))
    tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 2, minInterval: 1, statsInterval: 0, log: () => {} })
    await tracker.start()
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await tracker.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('a seeder and three leechers: every copy verified, and leechers upload to each other', async () => {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(6 * 1024 * 1024 + 12345)) // not a multiple of the piece length
    const want = await sha256File(file)
    const options = { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false as const, choker: { rechokeInterval: 500, optimisticInterval: 1500 } }

    const seeder = await Peer.seed(file, options)
    peers.push(seeder)
    await seeder.start()
    expect(seeder.multiaddrs.every(a => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true)

    const leechers: Peer[] = []
    for (let i = 0; i < 3; i++) {
      const p = await Peer.get(seeder.cid.toString(), join(dir, `out${i}`), options)
      peers.push(p)
      leechers.push(p)
    }
    const finished = leechers.map(completed)
    await Promise.all(leechers.map(async p => { await p.start() }))
    const done = await Promise.all(finished)
    for (const d of done) {
      expect(d.bytes).toBe(6 * 1024 * 1024 + 12345)
      expect(await sha256File(d.path)).toBe(want)
      // the temporary files are gone once the file is complete
      await expect.poll(async () => await readdir(dirname(d.path))).toEqual([basename(d.path)])
    }
    const uploadedByLeechers = leechers.reduce((n, p) => n + p.stats().uploaded, 0)
    expect(uploadedByLeechers).toBeGreaterThan(0)
    for (const p of leechers) expect(p.stats().hashFailures).toBe(0)
  })

  it('a leecher given the manifest file needs no manifest exchange', async () => {
    const file = join(dir, 'small.bin')
    await writeFile(file, randomBytes(300_000))
    const seeder = await Peer.seed(file, { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false })
    peers.push(seeder)
    await seeder.start()
    const leecher = await Peer.get(seeder.manifestPath as string, join(dir, 'out'), { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false })
    peers.push(leecher)
    const finished = completed(leecher)
    await leecher.start()
    const d = await finished
    expect(await sha256File(d.path)).toBe(await sha256File(file))
  })

  it('keeps retrying an unreachable tracker without failing, and downloads once one is there', async () => {
    const file = join(dir, 'late.bin')
    await writeFile(file, randomBytes(200_000))
    const seeder = await Peer.seed(file, { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false })
    peers.push(seeder)
    await seeder.start()
    // a second tracker URL that nobody listens on: announcing to it fails, the swarm goes on
    const dead = 'http://127.0.0.1:9/announce'
    const leecher = await Peer.get(seeder.cid.toString(), join(dir, 'out'), { listen: LOOPBACK, trackers: [dead, tracker.announceUrl], trackerMinBackoff: 100, stateDir: false })
    peers.push(leecher)
    const finished = completed(leecher)
    await leecher.start()
    const d = await finished
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    expect(leecher.trackerStatus).toContain('down')
  })

  it('an empty file: the download completes at once and is renamed into place', async () => {
    const file = join(dir, 'empty.bin')
    await writeFile(file, new Uint8Array(0))
    const seeder = await Peer.seed(file, { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false })
    peers.push(seeder)
    await seeder.start()
    for (const target of [seeder.manifestPath as string, seeder.cid.toString()]) {
      const out = join(dir, `out-${target.length}`)
      const leecher = await Peer.get(target, out, { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false })
      peers.push(leecher)
      const finished = completed(leecher)
      await leecher.start()
      const d = await finished
      expect(d).toMatchObject({ bytes: 0, path: join(out, 'empty.bin') })
      expect((await stat(d.path)).size).toBe(0)
      await expect.poll(async () => await readdir(out)).toEqual(['empty.bin'])
    }
  })
})
