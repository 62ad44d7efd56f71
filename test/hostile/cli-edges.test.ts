/**
 * Issue 10, item 10, with real `bitswarm` processes (the built dist/bitswarm.mjs: `npm run build`
 * first): an --out Node's recursive mkdir loops on forever, and an existing different file of
 * the manifest's name. Both must end the `get` with one clear line and a non-zero exit, soon.
 */
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, tempDir, useProcessCleanup, writeRandomFile } from '../e2e/procs.js'

/** nothing listens on the discard port: for runs that must fail before any network use */
const DEAD_TRACKER = 'http://127.0.0.1:9/announce'

useProcessCleanup()

describe('get: local errors end the run', () => {
  it('--out /proc/self/x (recursive mkdir spins on it): exits at once with a clear error', async () => {
    const dir = await tempDir()
    const get = new CliProc('get', ['get', 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', '--tracker', DEAD_TRACKER, '--out', '/proc/self/x', '--json'], { cwd: dir })
    const exit = await get.waitExit(10_000)
    expect(exit.code).toBe(2)
    expect(get.stderr.join('\n')).toMatch(/cannot write to --out \/proc\/self\/x/)
  }, 30_000)

  it('an existing different file of the manifest\'s name in --out: the get fetching by CID exits with a clear error', async () => {
    const dir = await tempDir()
    const file = join(dir, 'data.bin')
    await writeRandomFile(file, 256 * 1024)
    const tracker = new CliProc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--json', '--no-dht'], { cwd: dir })
    const cid = String((await seeder.wait('seeding', 30_000)).cid)
    const out = join(dir, 'out')
    await (await import('node:fs/promises')).mkdir(out)
    await writeFile(join(out, 'data.bin'), 'something else entirely')
    const get = new CliProc('get', ['get', cid, '--tracker', announce, '--out', out, '--listen', LOOPBACK, '--json', '--no-dht'], { cwd: dir })
    const exit = await get.waitExit(30_000)
    expect(exit.code).not.toBe(0)
    expect(get.stderr.join('\n')).toMatch(/already exists and is not this manifest's file/)
  }, 60_000)
})
