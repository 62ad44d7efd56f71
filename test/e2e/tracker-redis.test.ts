// `bitswarm tracker --store redis://…` as real processes on a real redis-server: two instances
// serve one swarm (a seeder announced to one, a leecher to the other, the leecher finishes), a
// killed and restarted instance still knows the swarm, and Redis stopped mid-run gives 503s with
// a reason, no crash, and service again once Redis is back.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hasRedisServer, startRedisServer } from '../helpers/redis-server.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { announceQuery, getJson, makePeer, recordParam } from '../tracker/helpers.js'
import { CLI, CliProc, LOOPBACK, sha256File, tempDir, until, useProcessCleanup, writeRandomFile } from './procs.js'

useProcessCleanup()

interface Counts { complete: number, incomplete: number, downloaded: number }

const servers: RedisServer[] = []
afterAll(async () => { await Promise.all(servers.map(async s => { await s.stop() })) })

async function startTracker (name: string, store: string, cwd: string, port = 0): Promise<{ proc: CliProc, announce: string, base: string, port: number }> {
  const proc = new CliProc(name, ['tracker', '--port', String(port), '--store', store, '--interval', '3', '--min-interval', '1', '--json'], { cwd })
  const listening = await proc.wait('listening', 15_000)
  expect(listening.store).toBe(store)
  const announce = String(listening.announce)
  return { proc, announce, base: announce.replace(/\/announce$/, ''), port: Number(new URL(announce).port) }
}

async function scrape (base: string, cid: string): Promise<{ status: number, counts?: Counts, error?: string }> {
  const { status, body } = await getJson(`${base}/scrape?manifest=${encodeURIComponent(cid)}`)
  const b = body as { files?: Record<string, Counts>, error?: string }
  return { status, counts: b.files?.[cid], error: b.error }
}

describe.skipIf(!hasRedisServer())('bitswarm tracker --store redis', () => {
  it('two instances on one Redis serve one swarm; a restarted instance still knows it; Redis down gives 503, then recovery', async () => {
    const dir = await tempDir()
    const redis = await startRedisServer()
    servers.push(redis)
    const a = await startTracker('tracker-a', redis.url, dir)
    const b = await startTracker('tracker-b', redis.url, dir)

    const file = join(dir, 'file.bin')
    const want = await writeRandomFile(file, 3 * 1024 * 1024 + 17)
    // the seeder knows only A, the leecher only B, and no DHT: B can only have learnt of the seeder through Redis
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', a.announce, '--listen', LOOPBACK, '--dht', 'off', '--json'], { cwd: dir })
    const seeding = await seeder.wait('seeding', 30_000)
    const cid = String(seeding.cid)
    const out = join(dir, 'out')
    const leecher = new CliProc('leecher', ['get', String(seeding.manifest), '--tracker', b.announce, '--out', out, '--listen', LOOPBACK, '--dht', 'off', '--json'], { cwd: dir })
    const complete = await leecher.wait('complete', 45_000)
    expect(await sha256File(String(complete.path))).toBe(want)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    // the leecher's completion, reported to B, is seen through A
    await until(async () => (await scrape(a.base, cid)).counts?.downloaded === 1, 10_000, () => 'A never saw the completion reported to B')

    // A dies without a word and comes back on its port (where the seeder announces): the swarm is
    // still there
    a.proc.child.kill('SIGKILL')
    await a.proc.waitExit(5000)
    const a2 = await startTracker('tracker-a2', redis.url, dir, a.port)
    expect(await scrape(a2.base, cid)).toMatchObject({ status: 200, counts: { complete: 1, downloaded: 1 } })
    const stats = (await getJson(`${a2.base}/stats`)).body
    expect(stats).toMatchObject({ swarms: 1, seeders: 1, store: { ok: true } })

    // Redis goes away: answers are 503 with the reason, the pages still answer, nobody crashes
    await redis.kill()
    const peer = await makePeer()
    const record = await recordParam(peer.key, ['/ip4/127.0.0.1/tcp/4001'])
    const refused = await getJson(`${b.announce}?${announceQuery({ manifest: cid, peer: peer.id, record, uploaded: 0, downloaded: 0, left: 10 })}`)
    expect(refused.status).toBe(503)
    expect(String((refused.body as { error: string }).error)).toMatch(/redis/)
    expect(await scrape(a2.base, cid)).toMatchObject({ status: 503 })
    const down = (await getJson(`${b.base}/stats`))
    expect(down.status).toBe(200)
    expect(down.body).toMatchObject({ store: { ok: false } })
    expect((down.body as { errors: Record<string, number> }).errors.unavailable).toBeGreaterThanOrEqual(1)

    // back (empty: this Redis keeps nothing on disk): both instances serve again by themselves, and
    // the seeder's next announce puts the swarm back
    await redis.restart()
    await until(async () => (await scrape(b.base, cid)).status === 200, 15_000, () => 'B did not recover')
    await until(async () => (await scrape(a2.base, cid)).counts?.complete === 1, 15_000, () => 'the seeder did not reappear through A')
    expect(a2.proc.running && b.proc.running && seeder.running).toBe(true)
    // the operator's log says so once each way (not once per reconnection attempt)
    expect(b.proc.stderr.filter(l => l.includes('redis: lost'))).toHaveLength(1)
    expect(b.proc.stderr.some(l => /redis: 127\.0\.0\.1:\d+\/0 is back/.test(l))).toBe(true)
    const metrics = await (await fetch(`${b.base}/metrics`)).text()
    expect(metrics).toMatch(/bitswarm_tracker_store_errors_total [1-9]/)
  }, 120_000)

  it('a Redis that is not there, or a bad --store, stops the tracker at start with one line', async () => {
    const run = (...args: string[]): { status: number | null, stderr: string } => {
      const r = spawnSync(process.execPath, [CLI, 'tracker', '--port', '0', ...args], { encoding: 'utf8', timeout: 20_000 })
      return { status: r.status, stderr: r.stderr }
    }
    // port 1 on loopback: nothing listens there
    const none = run('--store', 'redis://127.0.0.1:1')
    expect(none.status).toBe(1)
    expect(none.stderr).toMatch(/^bitswarm: cannot use the store redis:\/\/127\.0\.0\.1:1.*\n$/)
    for (const bad of ['postgres://x', 'redis://', 'redis://127.0.0.1:99999', 'redis://127.0.0.1:6379/x']) {
      const r = run('--store', bad)
      expect(r.status, bad).toBe(2)
      expect(r.stderr.trim().split('\n'), bad).toHaveLength(1)
    }
  }, 60_000)
})
