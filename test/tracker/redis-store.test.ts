// What only a shared store has to get right, on a real redis-server started by this file: several
// instances on one Redis, atomicity under concurrency, keys that expire by themselves, and Redis
// going away (killed, hung) and coming back. The semantics every store shares are in
// store-conformance.test.ts.
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { QuotaExceededError, StaleRecordError, StoreUnavailableError, TrackerFullError } from '../../tracker/errors.js'
import { parseRedisUrl, RedisPeerStore, type RedisPeerStoreInit } from '../../tracker/redis-store.js'
import { StoreConfigError, type StoreAnnounce } from '../../tracker/store.js'
import { freePort, hasRedisServer, NO_REDIS_REASON, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

const TTL = 60_000

function ann (manifest: string, peerId: string, seq: bigint, o: Partial<StoreAnnounce> = {}): StoreAnnounce {
  const now = o.now ?? Date.now()
  return { manifest, peerId, seq, multiaddrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`], left: 10, host: '10.0.0.1', seenSince: now - TTL, numwant: 50, ...o, now }
}

describe('parseRedisUrl and the init checks', () => {
  it('accepts redis://[user:password@]host:port[/db]', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379, database: 0 })
    expect(parseRedisUrl('redis://localhost:7000/3')).toEqual({ host: 'localhost', port: 7000, database: 3 })
    expect(parseRedisUrl('redis://me:p%40ss@db.example:6380/0')).toEqual({ host: 'db.example', port: 6380, database: 0, username: 'me', password: 'p@ss' })
    expect(parseRedisUrl('redis://:secret@h:1')).toEqual({ host: 'h', port: 1, database: 0, username: 'default', password: 'secret' })
    expect(parseRedisUrl('redis://[::1]:6379/')).toEqual({ host: '::1', port: 6379, database: 0 })
  })

  it('refuses anything else with one clear StoreConfigError that never repeats a password', () => {
    const bad = ['', 'junk', 'postgres://x', 'rediss://h:1', 'redis://', 'redis://h', 'redis://h:0', 'redis://h:abc',
      'redis://127.0.0.1:99999', 'redis://127.0.0.1:6379/x', 'redis://h:1/1/2', 'redis://h:1/-1', 'redis://h:1?db=2', 'redis://h:1#x',
      'redis://user:hunter2@h:99999']
    for (const url of bad) {
      expect(() => parseRedisUrl(url), url).toThrow(StoreConfigError)
      expect(() => parseRedisUrl(url), url).toThrow(/^invalid Redis URL \(.+\): expected redis:\/\/\[user:password@\]host:port\[\/db\]$/)
      expect(() => new RedisPeerStore({ url }), url).toThrow(StoreConfigError)
    }
    expect(() => parseRedisUrl('redis://user:hunter2@h:99999')).toThrow('invalid Redis URL (bad port)')
    try { parseRedisUrl('redis://user:hunter2@h:99999') } catch (err) { expect(String(err)).not.toContain('hunter2') }
    expect(() => parseRedisUrl('postgres://x')).toThrow('scheme "postgres" is not redis')
  })

  it('validates limits and timeouts like the memory store', () => {
    const url = 'redis://127.0.0.1:6379'
    const bad: Array<Partial<RedisPeerStoreInit>> = [
      { maxPeersPerManifest: 0 }, { maxManifests: 1.5 }, { maxPeersTotal: -1 }, { maxSwarmsPerPeer: Number.NaN }, { maxPeersPerIp: 0 },
      { replayWindow: -1 }, { historyTtl: Number.POSITIVE_INFINITY }, { peerTtl: 0 }, { commandTimeout: 0 }, { connectTimeout: -5 }, { keyPrefix: '' }
    ]
    for (const init of bad) expect(() => new RedisPeerStore({ url, ...init }), JSON.stringify(init)).toThrow(StoreConfigError)
    expect(() => new RedisPeerStore({ url, maxPeersPerManifest: 0 })).toThrow('maxPeersPerManifest must be a positive integer')
    expect(() => new RedisPeerStore({ url, replayWindow: 0, historyTtl: 0 })).not.toThrow()
  })
})

describe('start() without a Redis', () => {
  it('rejects with StoreUnavailableError within connectTimeout, and the store never hangs', async () => {
    const port = await freePort() // nothing listens there
    const store = new RedisPeerStore({ url: `redis://127.0.0.1:${port}`, connectTimeout: 400 })
    const t = Date.now()
    await expect(store.start()).rejects.toThrow(StoreUnavailableError)
    expect(Date.now() - t).toBeLessThan(2000)
    await expect(store.start()).rejects.toThrow(/^redis unavailable: .*ECONNREFUSED/)
    await expect(store.announce(ann('m', 'A', 1n))).rejects.toThrow(/redis unavailable: not started/)
    await store.close()
    await expect(store.scrape(['m'], 0, 1)).rejects.toThrow('redis unavailable: store closed')
  })

  it('rejects within connectTimeout when the port accepts but nothing answers', async () => {
    const sockets = new Set<Socket>()
    const silent = createServer(socket => { sockets.add(socket) })
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
    try {
      const port = (silent.address() as AddressInfo).port
      const store = new RedisPeerStore({ url: `redis://127.0.0.1:${port}`, connectTimeout: 400 })
      const t = Date.now()
      await expect(store.start()).rejects.toThrow(/^redis unavailable: /)
      expect(Date.now() - t).toBeLessThan(2000)
      await store.close()
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise(resolve => silent.close(resolve))
    }
  })
})

describe.skipIf(!hasRedisServer())(`RedisPeerStore on redis-server${hasRedisServer() ? '' : ` (skipped: ${NO_REDIS_REASON})`}`, () => {
  let server: RedisServer | undefined
  const open: RedisPeerStore[] = []
  let n = 0
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }

  beforeAll(async () => {
    server = await startRedisServer()
    process.on('unhandledRejection', onUnhandled)
    process.on('uncaughtException', onUnhandled)
  })
  afterEach(async () => { await Promise.all(open.splice(0).map(async s => { await s.close() })) })
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled)
    process.off('uncaughtException', onUnhandled)
    await server?.stop()
  })

  const url = (): string => {
    if (server == null) throw new Error('redis-server did not start')
    return server.url
  }
  const prefix = (): string => `redis-test:${process.pid}:${++n}:`
  /** a started store on the shared redis-server, or on the one at `at` */
  async function store (init: Partial<RedisPeerStoreInit> = {}, at: string = url()): Promise<RedisPeerStore> {
    const s = new RedisPeerStore({ url: at, keyPrefix: prefix(), peerTtl: TTL / 1000, ...init })
    open.push(s)
    await s.start()
    return s
  }
  async function raw (): Promise<ReturnType<typeof createClient>> {
    const c = createClient({ url: url() })
    c.on('error', () => {})
    await c.connect()
    return c
  }

  it('two instances on one Redis share the swarms; a new instance still knows them', async () => {
    const keyPrefix = prefix()
    const a = await store({ keyPrefix })
    const b = await store({ keyPrefix })
    await a.announce(ann('m', 'seeder', 1n, { left: 0 }))
    const leecher = await b.announce(ann('m', 'leecher', 1n))
    expect(leecher.candidates.map(c => c.peerId)).toEqual(['seeder'])
    await b.announce(ann('m', 'leecher', 2n, { left: 0, event: 'completed' }))
    expect(await a.scrape(['m'], Date.now() - TTL, Date.now())).toEqual([{ complete: 2, incomplete: 0, downloaded: 1 }])
    // a replay through the other instance is refused too
    await expect(a.announce(ann('m', 'leecher', 2n))).rejects.toThrow(StaleRecordError)
    await a.close()
    const c = await store({ keyPrefix })
    expect(await c.swarms(Date.now() - TTL, Date.now())).toEqual([{ manifest: 'm', complete: 2, incomplete: 0, downloaded: 1 }])
    // other prefixes are other trackers
    expect(await (await store()).swarms(Date.now() - TTL, Date.now())).toEqual([])
  })

  it('200 concurrent announces over two instances: exactly one copy of each record passes, counts exact', async () => {
    const keyPrefix = prefix()
    const a = await store({ keyPrefix })
    const b = await store({ keyPrefix })
    const now = Date.now()
    // 100 peers each send the same completed announce through both instances at once
    const tries = Array.from({ length: 100 }, (_, i) => ann(i % 2 === 0 ? 'm1' : 'm2', `p${i}`, 7n, { now, left: i % 4 < 2 ? 0 : 5, event: 'completed', host: `10.0.${i % 7}.1` }))
    const results = await Promise.allSettled(tries.flatMap(t => [a.announce(t), b.announce(t)]))
    const ok = results.filter(r => r.status === 'fulfilled').length
    const stale = results.filter(r => r.status === 'rejected' && r.reason instanceof StaleRecordError).length
    expect({ ok, stale }).toEqual({ ok: 100, stale: 100 })
    expect(await b.scrape(['m1', 'm2'], now - TTL, now)).toEqual([
      { complete: 25, incomplete: 25, downloaded: 50 },
      { complete: 25, incomplete: 25, downloaded: 50 }
    ])
  })

  it('a limit holds under concurrency: 80 newcomers, 50 places', async () => {
    const keyPrefix = prefix()
    const a = await store({ keyPrefix, maxPeersPerManifest: 50 })
    const b = await store({ keyPrefix, maxPeersPerManifest: 50 })
    const now = Date.now()
    const results = await Promise.allSettled(Array.from({ length: 80 }, (_, i) => (i % 2 === 0 ? a : b).announce(ann('m', `p${i}`, 1n, { now, host: `h${i}` }))))
    expect(results.filter(r => r.status === 'fulfilled')).toHaveLength(50)
    expect(results.filter(r => r.status === 'rejected' && r.reason instanceof TrackerFullError)).toHaveLength(30)
    expect((await a.scrape(['m'], now - TTL, now))[0].incomplete).toBe(50)
    // quotas hold the same way
    const q = await store({ maxPeersPerIp: 10 })
    const quota = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => q.announce(ann(`m${i % 3}`, `q${i}`, 1n, { now }))))
    expect(quota.filter(r => r.status === 'fulfilled')).toHaveLength(10)
    expect(quota.filter(r => r.status === 'rejected' && r.reason instanceof QuotaExceededError)).toHaveLength(20)
  })

  it('candidates from a large swarm are a bounded random sample of at least numwant', async () => {
    const s = await store()
    const now = Date.now()
    for (let i = 0; i < 150; i++) await s.announce(ann('m', `p${i}`, 1n, { now }))
    const seen = new Set<string>()
    for (let round = 0; round < 5; round++) {
      const r = await s.announce(ann('m', 'me', BigInt(round + 1), { now, numwant: 10 }))
      expect(r.candidates.length).toBeGreaterThanOrEqual(10)
      expect(r.candidates.length).toBeLessThanOrEqual(50)
      for (const c of r.candidates) seen.add(c.peerId)
    }
    // random: five answers do not keep handing out the same 50
    expect(seen.size).toBeGreaterThan(50)
    const big = await s.announce(ann('m', 'me', 10n, { now, numwant: 40 }))
    expect(big.candidates.length).toBeGreaterThanOrEqual(40)
    expect(big.candidates.length).toBeLessThanOrEqual(80)
  })

  it('every key carries a TTL, and a swarm nobody announces to disappears entirely by itself', async () => {
    const keyPrefix = prefix()
    // short lifetimes, on the real clock: key TTLs are these plus a second of slack
    const s = await store({ keyPrefix, peerTtl: 0.2, historyTtl: 0.3, replayWindow: 0.3 })
    const now = Date.now()
    const o = { now, seenSince: now - 200 }
    await s.announce(ann('m1', 'A', 1n, { ...o, left: 0, event: 'completed' }))
    await s.announce(ann('m1', 'B', 1n, { ...o, host: '10.9.9.9' }))
    await s.announce(ann('m2', 'A', 1n, { ...o, multiaddrs: [] }))
    await s.announce(ann('m2', 'A', 2n, { ...o, event: 'stopped' }))
    await s.announce(ann('m3', 'U', 5n, { ...o, event: 'stopped' }))
    const c = await raw()
    try {
      const keys = await c.keys(`${keyPrefix}*`)
      expect(keys.length).toBeGreaterThan(8)
      for (const k of keys) expect(await c.pTTL(k), k).toBeGreaterThan(0)
      await new Promise(resolve => setTimeout(resolve, 1700))
      expect(await c.keys(`${keyPrefix}*`)).toEqual([])
    } finally {
      c.destroy()
    }
  })

  it('re-loads its script when Redis lost it (NOSCRIPT)', async () => {
    const s = await store()
    await s.announce(ann('m', 'A', 1n))
    const c = await raw()
    try { await c.scriptFlush() } finally { c.destroy() }
    expect((await s.announce(ann('m', 'B', 1n))).candidates.map(p => p.peerId)).toEqual(['A'])
    expect(await s.scrape(['m'], Date.now() - TTL, Date.now())).toEqual([{ complete: 0, incomplete: 2, downloaded: 0 }])
  })

  it('an error reply from Redis (out of memory) is a StoreUnavailableError with its reason', async () => {
    const s = await store()
    await s.announce(ann('m', 'A', 1n))
    const c = await raw()
    try {
      await c.configSet({ maxmemory: '1', 'maxmemory-policy': 'noeviction' })
      await expect(s.announce(ann('m', 'B', 1n))).rejects.toThrow(/^redis unavailable: OOM /)
    } finally {
      await c.configSet('maxmemory', '0')
      c.destroy()
    }
    expect((await s.announce(ann('m', 'B', 1n))).counts.incomplete).toBe(2)
  })

  it('Redis hung (SIGSTOP): operations fail after commandTimeout, and work again once it answers', async () => {
    const own = await startRedisServer()
    try {
      const s = await store({ commandTimeout: 200 }, own.url)
      await s.announce(ann('m', 'A', 1n))
      own.pause()
      const t = Date.now()
      await expect(s.announce(ann('m', 'B', 1n))).rejects.toThrow('redis timed out after 200 ms')
      await expect(s.scrape(['m'], 0, Date.now())).rejects.toThrow(StoreUnavailableError)
      expect(Date.now() - t).toBeLessThan(1500)
      own.resume()
      // the late replies arrive and are ignored; new operations are answered
      expect((await s.announce(ann('m', 'C', 1n))).counts.incomplete).toBeGreaterThanOrEqual(2)
    } finally {
      await own.stop()
    }
    expect(unhandled).toEqual([])
  })

  it('Redis killed: StoreUnavailableError at once, no unhandled errors; back on its port: the same store works again by itself', async () => {
    const own = await startRedisServer()
    try {
      const s = await store({ commandTimeout: 500 }, own.url)
      await s.announce(ann('m', 'A', 1n))
      await own.kill()
      const t = Date.now()
      // the first operation may be the one that finds the socket closed: it fails too, fast
      for (let i = 0; i < 5; i++) {
        await expect(s.announce(ann('m', 'B', BigInt(i + 1)))).rejects.toThrow(/^redis unavailable: /)
        await expect(s.scrape(['m'], 0, Date.now())).rejects.toThrow(StoreUnavailableError)
        await expect(s.swarms(0, Date.now())).rejects.toThrow(StoreUnavailableError)
      }
      expect(Date.now() - t).toBeLessThan(1000)
      expect(s.isReady).toBe(false)
      // still down a while later (several reconnect attempts failed meanwhile)
      await new Promise(resolve => setTimeout(resolve, 600))
      await expect(s.announce(ann('m', 'B', 10n))).rejects.toThrow(/^redis unavailable: .*ECONNREFUSED/)

      await own.restart()
      const back = Date.now()
      let counts
      while (Date.now() - back < 5000) {
        try {
          counts = (await s.announce(ann('m', 'B', 11n))).counts
          break
        } catch (err) {
          expect(err).toBeInstanceOf(StoreUnavailableError)
          await new Promise(resolve => setTimeout(resolve, 100))
        }
      }
      // this redis-server keeps nothing on disk: B is alone in a fresh swarm
      expect(counts).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
      expect(Date.now() - back).toBeLessThan(3000)
    } finally {
      await own.stop()
    }
    expect(unhandled).toEqual([])
  })
})
