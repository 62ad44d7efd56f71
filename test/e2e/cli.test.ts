// End-to-end tests of the command-line contract: real `bitswarm` processes (the built
// dist/bitswarm.mjs, the bundle that `bitswarm` runs) on 127.0.0.1, talking NDJSON on stdout. `npm test` builds first.
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, listTree, sha256File, tempDir, until, useProcessCleanup, writeRandomFile } from './procs.js'

const MiB = 1024 * 1024
const DAG_CBOR = 0x71
/** nothing listens on the discard port: for runs that must fail before any network use */
const DEAD_TRACKER = 'http://127.0.0.1:9/announce'

useProcessCleanup()

interface Counts { complete: number, incomplete: number, downloaded: number }

async function startTracker (cwd: string): Promise<{ tracker: CliProc, announce: string, base: string }> {
  const tracker = new CliProc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { cwd })
  const announce = String((await tracker.wait('listening', 15_000)).announce)
  return { tracker, announce, base: announce.replace(/\/announce$/, '') }
}

async function startSeeder (file: string, announce: string, cwd: string, extra: string[] = []): Promise<{ seeder: CliProc, cid: string, manifest: string }> {
  const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--json', ...extra], { cwd })
  const seeding = await seeder.wait('seeding', 30_000)
  return { seeder, cid: String(seeding.cid), manifest: String(seeding.manifest) }
}

async function scrape (base: string, cid: string): Promise<Counts> {
  const res = await fetch(`${base}/scrape?manifest=${encodeURIComponent(cid)}`)
  expect(res.status).toBe(200)
  const body = await res.json() as { files: Record<string, Counts> }
  return body.files[cid]
}

async function manifestCid (text: string): Promise<string> {
  return CID.createV1(DAG_CBOR, await sha256.digest(new TextEncoder().encode(text))).toString()
}

describe('bitswarm CLI, end to end', () => {
  it('swarm: a tracker, a seeder and 3 leechers share a 12 MiB file; SIGINT announces stopped and exits 0', async () => {
    const dir = await tempDir()
    const size = 12 * MiB
    const file = join(dir, 'big.bin')
    const want = await writeRandomFile(file, size)
    const { tracker, announce, base } = await startTracker(dir)
    const { seeder, cid } = await startSeeder(file, announce, dir, ['--stats-interval', '0.5'])

    const leechers = [1, 2, 3].map(i => new CliProc(`leecher${i}`, [
      'get', cid, '--tracker', announce, '--out', join(dir, `out${i}`), '--listen', LOOPBACK,
      '--seed', '--json', '--stats-interval', '0.5'
    ], { cwd: dir }))

    const completes = await Promise.all(leechers.map(async l => await l.wait('complete', 45_000)))
    for (const [i, c] of completes.entries()) {
      expect(c.cid).toBe(cid)
      expect(c.bytes).toBe(size)
      expect(c.path).toBe(join(dir, `out${i + 1}`, 'big.bin'))
      expect(await sha256File(String(c.path))).toBe(want)
      // the final name only: no part file left beside it
      expect(await listTree(join(dir, `out${i + 1}`))).toEqual(['big.bin'])
    }

    // the leechers traded among themselves, not only with the seeder
    const uploadedByLeechers = (): number => leechers.reduce((n, l) => n + Number(l.last('stats')?.uploaded ?? 0), 0)
    await until(() => uploadedByLeechers() > 0, 15_000, () => `the leechers' stats never showed uploaded > 0: ${leechers.map(l => JSON.stringify(l.last('stats'))).join(' ')}`)
    for (const l of leechers) {
      const s = l.last('stats')
      expect(s).toBeDefined()
      for (const k of ['peers', 'have', 'pieces', 'downloaded', 'uploaded', 'downloadRate', 'uploadRate']) expect(typeof s?.[k], k).toBe('number')
    }
    // everyone is known to the tracker before they leave
    await until(async () => { const c = await scrape(base, cid); return c != null && c.complete + c.incomplete === 4 }, 15_000, () => 'scrape never counted 4 peers')

    // SIGINT: each announces stopped, closes, exits 0
    const exits = await Promise.all([...leechers, seeder].map(async p => await p.stop('SIGINT', 15_000)))
    for (const [i, x] of exits.entries()) expect(x, [...leechers, seeder][i].describe()).toEqual({ code: 0, signal: null })
    const after = await scrape(base, cid)
    expect(after.complete + after.incomplete).toBe(0)

    expect(await tracker.stop('SIGINT', 10_000)).toEqual({ code: 0, signal: null })
  })

  it('get by manifest file path downloads the file and exits 0 by itself', async () => {
    const dir = await tempDir()
    const size = 3 * MiB + 12345
    const file = join(dir, 'small.bin')
    const want = await writeRandomFile(file, size)
    const { announce } = await startTracker(dir)
    const { cid, manifest } = await startSeeder(file, announce, dir)
    expect(existsSync(manifest)).toBe(true)

    const out = join(dir, 'out')
    const getter = new CliProc('getter', ['get', manifest, '--tracker', announce, '--out', out, '--listen', LOOPBACK, '--json'], { cwd: dir })
    const complete = await getter.wait('complete', 45_000)
    expect(await getter.waitExit(15_000), getter.describe()).toEqual({ code: 0, signal: null })
    expect(complete.cid).toBe(cid)
    expect(complete.bytes).toBe(size)
    expect(complete.path).toBe(join(out, 'small.bin'))
    expect(await sha256File(String(complete.path))).toBe(want)
    expect(await listTree(out)).toEqual(['small.bin'])
  })

  describe('errors: one "bitswarm:" line on stderr, non-zero exit, no file under the final name', () => {
    async function expectCleanFailure (args: string[], cwd: string): Promise<CliProc> {
      const before = await listTree(cwd)
      const p = new CliProc('failing', args, { cwd })
      const exit = await p.waitExit(20_000)
      expect(exit.signal, p.describe()).toBeNull()
      expect(exit.code, p.describe()).not.toBe(0)
      const lines = p.stderr.filter(l => l.trim() !== '')
      expect(lines, p.describe()).toHaveLength(1)
      expect(lines[0]).toMatch(/^bitswarm: \S/)
      expect(p.events.filter(e => e.event === 'complete' || e.event === 'seeding')).toEqual([])
      expect(await listTree(cwd)).toEqual(before)
      return p
    }

    it('seed of a file that does not exist', async () => {
      const dir = await tempDir()
      await expectCleanFailure(['seed', '/nonexistent/file', '--tracker', DEAD_TRACKER, '--listen', LOOPBACK, '--json'], dir)
      expect(existsSync('/nonexistent/file.bitswarm')).toBe(false)
    })

    it('get of something that is neither a CID nor a manifest file', async () => {
      const dir = await tempDir()
      await expectCleanFailure(['get', 'not-a-cid', '--tracker', DEAD_TRACKER, '--out', join(dir, 'out'), '--listen', LOOPBACK, '--json'], dir)
    })

    it('get into an --out that cannot be created (a path under a regular file)', async () => {
      const dir = await tempDir()
      const blocker = join(dir, 'blocker')
      await writeFile(blocker, 'not a directory\n')
      const cid = await manifestCid('no such manifest')
      await expectCleanFailure(['get', cid, '--tracker', DEAD_TRACKER, '--out', join(blocker, 'out'), '--listen', LOOPBACK, '--json'], dir)
      expect(await readFile(blocker, 'utf8')).toBe('not a directory\n')
    })

    it('an unknown option', async () => {
      const dir = await tempDir()
      const cid = await manifestCid('no such manifest')
      const p = await expectCleanFailure(['get', cid, '--tracker', DEAD_TRACKER, '--out', join(dir, 'out'), '--no-such-option', '--json'], dir)
      expect(p.stderr.join('\n')).toContain('--no-such-option')
    })
  })

  it('tracker --json: first line is the listening event; a garbage announce gets 400 and the tracker keeps running', async () => {
    const dir = await tempDir()
    const { tracker, announce, base } = await startTracker(dir)
    // the event's name, when it was written, then its fields
    const m = /^\{"event":"listening","ts":\d{13},"announce":"http:\/\/127\.0\.0\.1:(\d+)\/announce","store":"memory"\}$/.exec(tracker.stdout[0])
    expect(m, `first stdout line: ${tracker.stdout[0]}`).not.toBeNull()
    expect(Number(m?.[1])).toBeGreaterThan(0)
    expect(announce).toBe(`http://127.0.0.1:${m?.[1]}/announce`)

    const bad = await fetch(`${base}/announce?manifest=zzz`)
    expect(bad.status).toBe(400)
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/)
    const body = await bad.json() as { error?: unknown }
    expect(typeof body.error).toBe('string')
    expect(String(body.error)).not.toBe('')

    // still serving, still running
    const unknown = CID.create(1, DAG_CBOR, await sha256.digest(new TextEncoder().encode('no such swarm'))).toString()
    const ok = await fetch(`${base}/scrape?manifest=${unknown}`)
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ files: { [unknown]: { complete: 0, incomplete: 0, downloaded: 0 } } })
    expect(tracker.running).toBe(true)
    // with --json, stdout is NDJSON only (diagnostics go to stderr)
    for (const line of tracker.stdout) expect(() => JSON.parse(line) as unknown, line).not.toThrow()

    expect(await tracker.stop('SIGINT', 10_000)).toEqual({ code: 0, signal: null })
  })
})
