// End-to-end tests of relays (issue 13): real `bitswarm` processes (the built dist/bitswarm.mjs)
// on loopback. `bitswarm relay` prints its event and addresses; `tracker --relay` runs one beside
// the tracker and lists a seeder's circuit address through it; a seeder that listens where the
// tracker cannot vouch for (127.0.0.2, announcing from 127.0.0.1) is reached through the relay
// alone, and the leecher's `peer` event says so. Across real NATs: test/netns.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, sha256File, tempDir, useProcessCleanup, writeRandomFile } from './procs.js'

useProcessCleanup()

describe('relays, end to end', () => {
  it('`bitswarm relay --json` prints its peer id and addresses, and stops on SIGTERM', async () => {
    const dir = await tempDir()
    const relay = new CliProc('relay', ['relay', '--listen', LOOPBACK, '--max-relayed', '64MiB', '--max-relayed-time', '10m', '--json'], { cwd: dir })
    const e = await relay.wait('relay', 15_000)
    expect(String(e.peerId)).toMatch(/^12D3KooW/)
    expect(e.multiaddrs).toEqual([expect.stringMatching(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${String(e.peerId)}$`))])
    relay.child.kill('SIGTERM')
    expect((await relay.waitExit(10_000)).code).toBe(0)
    // a bad limit is a usage error
    const bad = new CliProc('bad', ['relay', '--max-relayed-connections', '0'], { cwd: dir })
    expect((await bad.waitExit(10_000)).code).toBe(2)
  })

  it('a seeder behind `tracker --relay` is reached through the relay; the file crosses it', async () => {
    const dir = await tempDir()
    const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--relay', '--json'], { cwd: dir })
    const listening = await tracker.wait('listening', 15_000)
    const announce = String(listening.announce)
    const relay = (listening.relay as string[])[0]
    expect(relay).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
    const file = join(dir, 'data.bin')
    const sha = await writeRandomFile(file, 2 * 1024 * 1024 + 5)
    // on 127.0.0.2, announcing from 127.0.0.1: the tracker lists only its circuit address
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--relay', relay, '--listen', '/ip4/127.0.0.2/tcp/0',
      '--no-dht', '--state-dir', join(dir, 'state', 'seeder'), '--json'], { cwd: dir })
    const seeding = await seeder.wait('seeding', 30_000)
    expect((seeding.multiaddrs as string[]).some(a => a.startsWith(`${relay}/p2p-circuit/p2p/`))).toBe(true)
    const leecher = new CliProc('leecher', ['get', String(seeding.cid), '--tracker', announce, '--out', join(dir, 'out'),
      '--listen', LOOPBACK, '--no-dht', '--state-dir', join(dir, 'state', 'leecher'), '--json'], { cwd: dir })
    const peer = await leecher.wait('peer', 30_000)
    expect(peer).toMatchObject({ peerId: seeding.peerId, source: 'tracker', via: 'relayed' })
    const complete = await leecher.wait('complete', 30_000)
    expect(await sha256File(String(complete.path))).toBe(sha)
    expect((await leecher.waitExit(15_000)).code).toBe(0)
    // the seeder says whether it can be reached: only through the relay
    const stats = await seeder.wait('stats', 15_000)
    expect(stats.reachability).toBe('relayed')
  }, 60_000)
})
