// Resume after a crash: a leecher killed with SIGKILL mid-download and started again with the
// same command checks what is on disk, fetches only the rest, and ends byte-identical.
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, listTree, LOOPBACK, sha256File, tempDir, until, useProcessCleanup, writeRandomFile } from '../e2e/procs.js'

useProcessCleanup()
const MiB = 1024 * 1024

async function swarm (dir: string, size: number): Promise<{ want: string, announce: string, cid: string }> {
  const file = join(dir, 'data.bin')
  const want = await writeRandomFile(file, size)
  const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--json'], { cwd: dir })
  const announce = String((await tracker.wait('listening', 15_000)).announce)
  // slow, so that there is a "middle" of the download to interrupt
  const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--max-upload-rate', '2MiB', '--json'], { cwd: dir })
  const cid = String((await seeder.wait('seeding', 30_000)).cid)
  return { want, announce, cid }
}

describe('resume', () => {
  it('kill -9 mid-download, run the same command again: only the rest is fetched', async () => {
    const dir = await tempDir()
    const size = 8 * MiB
    const { want, announce, cid } = await swarm(dir, size)
    const args = ['get', cid, '--tracker', announce, '--out', join(dir, 'out'), '--listen', LOOPBACK, '--stats-interval', '0.2', '--json']

    const first = new CliProc('first', args, { cwd: dir })
    await until(() => Number(first.last('stats')?.progress ?? 0) > 0.3, 30_000, () => 'no progress')
    first.child.kill('SIGKILL')
    await first.waitExit()
    // nothing under the final name before every piece is verified
    await expect(stat(join(dir, 'out', 'data.bin'))).rejects.toThrow()

    const second = new CliProc('second', args, { cwd: dir })
    const done = await second.wait('complete', 60_000)
    expect((await second.waitExit()).code).toBe(0)
    expect(await sha256File(String(done.path))).toBe(want)
    const m = /resuming: (\d+) of (\d+) pieces already here \(hashed again\)/.exec(second.stderr.join('\n'))
    expect(m).not.toBeNull()
    const [resumed, pieces] = [Number(m?.[1]), Number(m?.[2])]
    expect(resumed).toBeGreaterThan(pieces * 0.25)
    // it fetched the rest, not everything again (give or take the pieces in flight at the kill)
    const pieceLength = Number(second.last('manifest')?.pieceLength)
    expect(Number(second.last('stats')?.downloaded)).toBeLessThanOrEqual(size - resumed * pieceLength + 8 * pieceLength)
    // the part file and the resume record go once the file is complete
    expect(await listTree(join(dir, 'out'))).toEqual(['data.bin'])
  }, 120_000)

  it('a clean stop (SIGINT) leaves a resume record the next run trusts without hashing', async () => {
    const dir = await tempDir()
    const { want, announce, cid } = await swarm(dir, 4 * MiB)
    const args = ['get', cid, '--tracker', announce, '--out', join(dir, 'out'), '--listen', LOOPBACK, '--stats-interval', '0.2', '--json']
    const first = new CliProc('first', args, { cwd: dir })
    await until(() => Number(first.last('stats')?.progress ?? 0) > 0.2, 30_000, () => 'no progress')
    expect((await first.stop('SIGINT')).code).toBe(0)
    const second = new CliProc('second', args, { cwd: dir })
    const done = await second.wait('complete', 60_000)
    expect(await sha256File(String(done.path))).toBe(want)
    expect(second.stderr.join('\n')).toMatch(/resuming: \d+ of \d+ pieces already here \(resume record, its pieces hashed again\)/)
  }, 120_000)

  it('a get whose file is already complete verifies it and is done at once', async () => {
    const dir = await tempDir()
    const { want, announce, cid } = await swarm(dir, 1 * MiB)
    const args = ['get', cid, '--tracker', announce, '--out', join(dir, 'out'), '--listen', LOOPBACK, '--json']
    await new CliProc('first', args, { cwd: dir }).wait('complete', 60_000)
    const again = new CliProc('again', args, { cwd: dir })
    const done = await again.wait('complete', 30_000)
    expect(await sha256File(String(done.path))).toBe(want)
    expect((await again.waitExit()).code).toBe(0)
  }, 120_000)
})
