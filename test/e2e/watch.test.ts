// Watching the swarm from a script (issue 14): real `bitswarm` processes with --json and a short
// --stats-interval. Every event is stamped; `stats` carries ratio, distributed copies, the
// tracker's counts and the elapsed time; `peers` lists each connected peer; a peer that goes is a
// `peer:disconnect`; and the header comes first, even for a download already on disk.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, tempDir, useProcessCleanup, writeRandomFile, type JsonEvent } from './procs.js'

useProcessCleanup()

const MiB = 1024 * 1024
const PEER_FIELDS = {
  peerId: 'string',
  address: 'string',
  source: 'string',
  via: 'string',
  progress: 'number',
  downloadRate: 'number',
  uploadRate: 'number',
  amChoking: 'boolean',
  amInterested: 'boolean',
  peerChoking: 'boolean',
  peerInterested: 'boolean',
  optimistic: 'boolean',
  snubbed: 'boolean'
}

function peersOf (e: JsonEvent): Array<Record<string, unknown>> {
  return e.peers as Array<Record<string, unknown>>
}

describe('watching the swarm (--json)', () => {
  it('timestamps, the new stats fields, peers, peer:disconnect, and the header before complete', async () => {
    const dir = await tempDir()
    const file = join(dir, 'watched.bin')
    await writeRandomFile(file, MiB)
    const common = ['--listen', LOOPBACK, '--dht', 'off', '--json', '--stats-interval', '0.2']

    const tracker = new CliProc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, ...common], { cwd: dir })
    const seeding = await seeder.wait('seeding', 30_000)
    const manifest = String(seeding.manifest)

    // slow enough (about 2 s) for a few rounds of stats and peers while it downloads
    const leecher = new CliProc('leecher', ['get', manifest, '--tracker', announce, '--out', join(dir, 'out'), '--max-download-rate', '512KiB', ...common], { cwd: dir })
    const started = await leecher.wait('started', 30_000)

    // the leecher's stats: the new fields, the tracker's counts once it answered
    const stats = await leecher.wait('stats', 30_000, e => e.seeders != null && e.phase === 'downloading')
    expect(typeof stats.ratio, leecher.describe()).toBe('number')
    expect(typeof stats.distributedCopies).toBe('number')
    expect(stats.seeders).toBeGreaterThanOrEqual(1)
    expect(typeof stats.leechers).toBe('number')
    expect(stats.elapsed).toBeGreaterThan(0)

    // a `peers` event naming the seeder (once it said it has every piece), with every field
    const peers = await leecher.wait('peers', 30_000, e => peersOf(e).some(p => p.peerId === seeding.peerId && p.progress === 1))
    const seen = peersOf(peers).find(p => p.peerId === seeding.peerId) ?? {}
    for (const [k, type] of Object.entries(PEER_FIELDS)) expect(typeof seen[k], `peers[].${k}: ${JSON.stringify(seen)}`).toBe(type)
    expect(seen).toMatchObject({ via: 'direct', progress: 1 })
    // we dialled it (the tracker named it), or it dialled us first
    expect(['tracker', 'incoming']).toContain(seen.source)
    expect(String(seen.address)).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)

    await leecher.wait('complete', 45_000)
    // at the end: the seed's copy and ours, at least
    expect(leecher.last('stats')?.distributedCopies).toBeGreaterThanOrEqual(1)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    // the seeder saw the leecher come and go, and said why
    const left = await seeder.wait('peer:disconnect', 15_000, e => e.peerId === started.peerId)
    expect(typeof left.reason).toBe('string')
    expect(String(left.reason)).not.toBe('')
    // the seeder's side: it listed the leecher, and measures what it gave against what it holds
    const fromSeeder = seeder.events.find(e => e.event === 'peers' && peersOf(e).some(p => p.peerId === started.peerId))
    expect(fromSeeder, seeder.describe()).toBeDefined()
    const seedStats = seeder.last('stats')
    expect(seedStats?.ratio).toBeGreaterThan(0)
    expect(seedStats?.elapsed).toBeGreaterThan(0)

    // the file is there: a second get has nothing to fetch, and the header still comes first
    const again = new CliProc('again', ['get', manifest, '--tracker', announce, '--out', join(dir, 'out'), ...common], { cwd: dir })
    expect(await again.waitExit(20_000), again.describe()).toEqual({ code: 0, signal: null })
    const order = again.events.map(e => e.event)
    expect(order[0], again.describe()).toBe('started')
    expect(order.indexOf('complete')).toBeGreaterThan(order.indexOf('started'))
    expect(order.indexOf('manifest')).toBeGreaterThan(order.indexOf('started'))

    // every event of every process carries a numeric ts (ms since the epoch), in order per process
    for (const p of [tracker, seeder, leecher, again]) {
      expect(p.events.length).toBeGreaterThan(0)
      let last = 0
      for (const e of p.events) {
        expect(typeof e.ts, `${p.name}: ${JSON.stringify(e).slice(0, 200)}`).toBe('number')
        expect(e.ts as number).toBeGreaterThanOrEqual(last)
        last = e.ts as number
      }
      expect(Math.abs(last - Date.now())).toBeLessThan(120_000)
    }
  })
})
