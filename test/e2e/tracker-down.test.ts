// When the tracker dies: real `bitswarm` processes on 127.0.0.1. The tracker is killed with
// SIGKILL in the middle of a download; the leechers finish; then a new leecher that knows only
// the CID and the address of one swarm member (no tracker at all) finishes too.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, sha256File, tempDir, until, useProcessCleanup, writeRandomFile } from './procs.js'

const MiB = 1024 * 1024

useProcessCleanup()

describe('when the tracker is down', () => {
  it('tracker killed mid-download: leechers finish; a newcomer with only --bootstrap finishes', async () => {
    const dir = await tempDir()
    const file = join(dir, 'data.bin')
    const want = await writeRandomFile(file, 8 * MiB)

    const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    // a slow seeder, so that the download is still under way when the tracker dies
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--max-upload-rate', '3MiB', '--json'], { cwd: dir })
    const cid = String((await seeder.wait('seeding', 30_000)).cid)

    const leechers = [1, 2].map(i => new CliProc(`leecher${i}`, [
      'get', cid, '--tracker', announce, '--out', join(dir, `out${i}`), '--listen', LOOPBACK, '--seed', '--stats-interval', '0.2', '--json'
    ], { cwd: dir }))
    // mid-download: both have pieces, neither has all
    await until(() => leechers.every(l => Number(l.last('stats')?.have ?? 0) > 0), 30_000, () => 'leechers never got a piece')
    expect(leechers.some(l => l.last('complete') != null)).toBe(false)
    tracker.child.kill('SIGKILL')
    await tracker.waitExit()

    const done = await Promise.all(leechers.map(async l => await l.wait('complete', 60_000)))
    for (const d of done) expect(await sha256File(String(d.path))).toBe(want)
    await until(() => leechers.every(l => String(l.last('stats')?.tracker) === 'down'), 15_000, () => 'the leechers did not notice the tracker is down')

    // a newcomer: no tracker, the CID and one member's address
    const member = String((leechers[0].last('started')?.multiaddrs as string[])[0])
    const late = new CliProc('late', ['get', cid, '--bootstrap', member, '--out', join(dir, 'late'), '--listen', LOOPBACK, '--json'], { cwd: dir })
    const last = await late.wait('complete', 60_000)
    expect(await sha256File(String(last.path))).toBe(want)
    expect((await late.waitExit()).code).toBe(0)
  }, 120_000)
})
