// One suite, every PeerStore (chihaya runs one suite against every backend): the in-memory store
// and the Redis store on a real redis-server started by this file. Time is injected (now and
// seenSince), so expiry is tested without waiting; `tick` is the periodic sweep the tracker runs
// for a store that does not expire entries by itself (memory).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { QuotaExceededError, StaleRecordError, TrackerFullError } from '../../tracker/errors.js'
import { RedisPeerStore } from '../../tracker/redis-store.js'
import { MemoryPeerStore, type MemoryPeerStoreInit, type PeerCandidate, type PeerStore, type StoreAnnounce, type SwarmSummary } from '../../tracker/store.js'
import { hasRedisServer, NO_REDIS_REASON, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

type MakeStore = (init?: MemoryPeerStoreInit) => Promise<PeerStore>

const T0 = 1_700_000_000_000
const TTL = 60_000
const ADDR = '/ip4/127.0.0.1/tcp/4001'

/** ms since T0 → the tracker's clock */
const at = (seconds: number): number => T0 + seconds * 1000

/** An announce at `now` (default T0) with the tracker's seenSince for a 60 s peer TTL. */
function ann (manifest: string, peerId: string, seq: bigint, o: Partial<StoreAnnounce> = {}): StoreAnnounce {
  const now = o.now ?? T0
  return {
    manifest,
    peerId,
    seq,
    multiaddrs: [`${ADDR}/p2p/${peerId}`],
    left: 10,
    host: '10.0.0.1',
    seenSince: now - TTL,
    numwant: 50,
    ...o,
    now
  }
}

function tick (store: PeerStore, now: number): void {
  store.sweep?.(now - TTL, now)
}

const sortSwarms = (list: SwarmSummary[]): SwarmSummary[] => [...list].sort((a, b) => a.manifest.localeCompare(b.manifest))
// a store may hand out its full entries: compare what an answer is made of
const shown = (list: PeerCandidate[]): PeerCandidate[] => list.map(({ peerId, multiaddrs, host }) => ({ peerId, multiaddrs, host }))
const ids = (list: Array<{ peerId: string }>): string[] => list.map(p => p.peerId).sort()

function describeStoreConformance (name: string, make: MakeStore): void {
  describe(name, () => {
    it('announce: counts after, candidates are the other live peers with addresses', async () => {
      const s = await make()
      const a = await s.announce(ann('m1', 'A', 1n, { left: 0, host: '10.0.0.1' }))
      expect(a).toEqual({ candidates: [], counts: { complete: 1, incomplete: 0, downloaded: 0 } })
      const b = await s.announce(ann('m1', 'B', 1n, { host: '10.0.0.2' }))
      expect(b.counts).toEqual({ complete: 1, incomplete: 1, downloaded: 0 })
      expect(shown(b.candidates)).toEqual([{ peerId: 'A', multiaddrs: [`${ADDR}/p2p/A`], host: '10.0.0.1' }])
      // C has no addresses: counted, never handed out
      const c = await s.announce(ann('m1', 'C', 1n, { multiaddrs: [] }))
      expect(c.counts).toEqual({ complete: 1, incomplete: 2, downloaded: 0 })
      expect(ids(c.candidates)).toEqual(['A', 'B'])
      const a2 = await s.announce(ann('m1', 'A', 2n, { left: 0, now: at(1) }))
      expect(ids(a2.candidates)).toEqual(['B'])
      // a leecher that finished moves to the seeders; new addresses replace the old
      const b2 = await s.announce(ann('m1', 'B', 2n, { left: 0, now: at(2), host: '10.0.0.2', multiaddrs: ['/ip4/10.0.0.2/tcp/9'] }))
      expect(b2.counts).toEqual({ complete: 2, incomplete: 1, downloaded: 0 })
      const a3 = await s.announce(ann('m1', 'A', 3n, { left: 0, now: at(3) }))
      expect(shown(a3.candidates)).toEqual([{ peerId: 'B', multiaddrs: ['/ip4/10.0.0.2/tcp/9'], host: '10.0.0.2' }])
      // other swarms are separate
      expect((await s.announce(ann('m2', 'A', 1n, { now: at(3) }))).counts).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
    })

    it('peers without addresses never crowd out the ones with addresses', async () => {
      const s = await make()
      for (let i = 0; i < 60; i++) await s.announce(ann('m', `silent${i}`, 1n, { multiaddrs: [] }))
      for (const id of ['X', 'Y', 'Z']) await s.announce(ann('m', id, 1n))
      const r = await s.announce(ann('m', 'me', 1n, { numwant: 3 }))
      expect(ids(r.candidates)).toEqual(['X', 'Y', 'Z'])
      expect(r.counts.incomplete).toBe(64)
    })

    it('candidates hold at least numwant when there are that many, never self, no duplicates', async () => {
      const s = await make()
      for (let i = 0; i < 120; i++) await s.announce(ann('m', `p${i}`, 1n))
      const r = await s.announce(ann('m', 'p0', 2n, { numwant: 30 }))
      const got = r.candidates.map(c => c.peerId)
      expect(got.length).toBeGreaterThanOrEqual(30)
      expect(new Set(got).size).toBe(got.length)
      expect(got).not.toContain('p0')
      for (const c of r.candidates) expect(c.multiaddrs).toEqual([`${ADDR}/p2p/${c.peerId}`])
    })

    it('expiry follows the injected clock: a peer silent longer than the TTL is neither counted nor handed out', async () => {
      const s = await make()
      await s.announce(ann('m', 'A', 1n, { now: at(0) }))
      await s.announce(ann('m', 'B', 1n, { now: at(30), left: 0 }))
      // A was last seen at 0: alive up to and including seenSince = 0
      expect((await s.announce(ann('m', 'C', 1n, { now: at(60) }))).candidates.map(p => p.peerId).sort()).toEqual(['A', 'B'])
      const late = await s.announce(ann('m', 'C', 2n, { now: at(61) }))
      expect(ids(late.candidates)).toEqual(['B'])
      expect(late.counts).toEqual({ complete: 1, incomplete: 1, downloaded: 0 })
      expect(await s.scrape(['m'], at(61) - TTL, at(61))).toEqual([{ complete: 1, incomplete: 1, downloaded: 0 }])
      expect(await s.scrape(['m'], at(200) - TTL, at(200))).toEqual([{ complete: 0, incomplete: 0, downloaded: 0 }])
      // a swarm whose peers all expired (and no completed counter) is no longer held
      tick(s, at(200))
      expect(await s.swarms(at(200) - TTL, at(200))).toEqual([])
      // and an expired peer coming back is counted again
      expect((await s.announce(ann('m', 'A', 2n, { now: at(201) }))).counts).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
    })

    it('replays are refused: seq equal or lower, compared as 64-bit integers', async () => {
      const s = await make()
      await s.announce(ann('m', 'A', 5n))
      await expect(s.announce(ann('m', 'A', 5n))).rejects.toThrow(StaleRecordError)
      await expect(s.announce(ann('m', 'A', 4n))).rejects.toThrow(/record seq 4 is not newer than the last accepted \(5\)/)
      // decimal strings of different lengths: 10 > 9, 100 > 99
      await s.announce(ann('m', 'A', 9n))
      await s.announce(ann('m', 'A', 10n))
      await expect(s.announce(ann('m', 'A', 9n))).rejects.toThrow(StaleRecordError)
      await s.announce(ann('m', 'A', 99n))
      await s.announce(ann('m', 'A', 100n))
      // past 2^53 doubles collide: 2^53 and 2^53 + 1 are one double, 2^64 − 2 and 2^64 − 1 too
      await s.announce(ann('m', 'A', 2n ** 53n))
      await s.announce(ann('m', 'A', 2n ** 53n + 1n))
      await expect(s.announce(ann('m', 'A', 2n ** 53n + 1n))).rejects.toThrow(StaleRecordError)
      await s.announce(ann('m', 'A', 2n ** 64n - 2n))
      await s.announce(ann('m', 'A', 2n ** 64n - 1n))
      await expect(s.announce(ann('m', 'A', 2n ** 64n - 2n))).rejects.toThrow(/not newer than the last accepted \(18446744073709551615\)/)
      // a refused replay changed nothing
      expect((await s.scrape(['m'], T0 - TTL, T0))[0]).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
      // seqs are per manifest
      await s.announce(ann('other', 'A', 1n))
    })

    it('stopped removes the peer and its seq is remembered for the replay window', async () => {
      const s = await make({ replayWindow: 100 })
      await s.announce(ann('m', 'A', 5n))
      await s.announce(ann('m', 'B', 1n))
      const stop = await s.announce(ann('m', 'A', 6n, { event: 'stopped', now: at(1) }))
      expect(stop).toEqual({ candidates: [], counts: { complete: 0, incomplete: 1, downloaded: 0 } })
      expect(ids((await s.announce(ann('m', 'B', 2n, { now: at(2) }))).candidates)).toEqual([])
      // the captured started (seq 5) and the stopped itself (6) are worth nothing now
      await expect(s.announce(ann('m', 'A', 5n, { now: at(3) }))).rejects.toThrow(StaleRecordError)
      await expect(s.announce(ann('m', 'A', 6n, { now: at(3) }))).rejects.toThrow(/last accepted \(6\)/)
      await s.announce(ann('m', 'A', 7n, { now: at(4) }))
      // a stopped for a peer never seen (it overtook its started) is remembered too
      expect((await s.announce(ann('m', 'U', 10n, { event: 'stopped', now: at(5) }))).counts.incomplete).toBe(2)
      await expect(s.announce(ann('m', 'U', 9n, { now: at(6) }))).rejects.toThrow(StaleRecordError)
      // a stopped replayed is refused like any record
      await expect(s.announce(ann('m', 'U', 10n, { event: 'stopped', now: at(6) }))).rejects.toThrow(StaleRecordError)
      // after the window an old seq is accepted again
      tick(s, at(200))
      await s.announce(ann('m', 'U', 1n, { now: at(200) }))
    })

    it('an expired peer\'s seq is still remembered', async () => {
      const s = await make({ replayWindow: 100 })
      await s.announce(ann('m', 'A', 5n))
      tick(s, at(61))
      await expect(s.announce(ann('m', 'A', 5n, { now: at(62) }))).rejects.toThrow(StaleRecordError)
      await s.announce(ann('m', 'A', 6n, { now: at(62) }))
    })

    it('completed is counted once per peer, however often it is repeated', async () => {
      const s = await make()
      expect((await s.announce(ann('m', 'A', 1n, { left: 0, event: 'completed' }))).counts).toEqual({ complete: 1, incomplete: 0, downloaded: 1 })
      expect((await s.announce(ann('m', 'A', 2n, { left: 0, event: 'completed' }))).counts.downloaded).toBe(1)
      expect((await s.announce(ann('m', 'A', 3n, { left: 0 }))).counts.downloaded).toBe(1)
      expect((await s.announce(ann('m', 'B', 1n, { left: 0, event: 'completed' }))).counts.downloaded).toBe(2)
      // a refused replay of a completed counts nothing
      await expect(s.announce(ann('m', 'C', 0n, { event: 'completed' }))).resolves.toBeDefined()
      await expect(s.announce(ann('m', 'C', 0n, { event: 'completed' }))).rejects.toThrow(StaleRecordError)
      expect((await s.scrape(['m'], T0 - TTL, T0))[0].downloaded).toBe(3)
    })

    it('scrape: counts in the order asked, zeros for unknown manifests', async () => {
      const s = await make()
      await s.announce(ann('m1', 'A', 1n, { left: 0, event: 'completed' }))
      await s.announce(ann('m2', 'A', 1n))
      await s.announce(ann('m2', 'B', 1n))
      expect(await s.scrape(['m2', 'nope', 'm1', 'm2'], T0 - TTL, T0)).toEqual([
        { complete: 0, incomplete: 2, downloaded: 0 },
        { complete: 0, incomplete: 0, downloaded: 0 },
        { complete: 1, incomplete: 0, downloaded: 1 },
        { complete: 0, incomplete: 2, downloaded: 0 }
      ])
      expect(await s.scrape([], T0 - TTL, T0)).toEqual([])
    })

    it('swarms(): live swarms with counts, and history-only swarms until historyTtl', async () => {
      const s = await make({ historyTtl: 100 })
      await s.announce(ann('live', 'A', 1n, { now: at(0) }))
      await s.announce(ann('gone', 'A', 1n, { now: at(0), left: 0, event: 'completed' }))
      await s.announce(ann('gone', 'A', 2n, { now: at(10), event: 'stopped' }))
      await s.announce(ann('quiet', 'B', 1n, { now: at(0), left: 0, event: 'completed' }))
      await s.announce(ann('plain', 'C', 1n, { now: at(0) }))
      await s.announce(ann('plain', 'C', 2n, { now: at(1), event: 'stopped' }))
      expect(sortSwarms(await s.swarms(at(20) - TTL, at(20)))).toEqual([
        { manifest: 'gone', complete: 0, incomplete: 0, downloaded: 1 },
        { manifest: 'live', complete: 0, incomplete: 1, downloaded: 0 },
        { manifest: 'quiet', complete: 1, incomplete: 0, downloaded: 1 }
      ])
      // 'quiet' loses its peer by expiry at 60 (the tracker sweeps at 61): history from then on
      tick(s, at(61))
      await s.announce(ann('live', 'A', 2n, { now: at(61) }))
      expect(sortSwarms(await s.swarms(at(109) - TTL, at(109)))).toEqual([
        { manifest: 'gone', complete: 0, incomplete: 0, downloaded: 1 },
        { manifest: 'live', complete: 0, incomplete: 1, downloaded: 0 },
        { manifest: 'quiet', complete: 0, incomplete: 0, downloaded: 1 }
      ])
      expect(await s.scrape(['gone'], at(109) - TTL, at(109))).toEqual([{ complete: 0, incomplete: 0, downloaded: 1 }])
      // 'gone' stopped at 10: its history ends at 110
      tick(s, at(111))
      expect(sortSwarms(await s.swarms(at(111) - TTL, at(111))).map(w => w.manifest)).toEqual(['live', 'quiet'])
      expect(await s.scrape(['gone'], at(111) - TTL, at(111))).toEqual([{ complete: 0, incomplete: 0, downloaded: 0 }])
      await s.announce(ann('live', 'A', 3n, { now: at(120) }))
      // 'quiet' ends at 161 at the latest
      tick(s, at(163))
      expect(sortSwarms(await s.swarms(at(163) - TTL, at(163))).map(w => w.manifest)).toEqual(['live'])
      // a swarm that comes back after its history ended starts from zero
      expect((await s.announce(ann('gone', 'D', 1n, { now: at(164) }))).counts).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
    })

    it('limits: a full swarm refuses newcomers, a known peer is always re-accepted, expired ones do not count', async () => {
      // one host everywhere: the memory store's eviction (from hosts holding more) never applies
      const s = await make({ maxPeersPerManifest: 2 })
      await s.announce(ann('m', 'A', 1n))
      await s.announce(ann('m', 'B', 1n, { now: at(30) }))
      const full = s.announce(ann('m', 'C', 1n, { now: at(31) }))
      await expect(full).rejects.toThrow(TrackerFullError)
      await expect(s.announce(ann('m', 'C', 2n, { now: at(31) }))).rejects.toThrow('swarm is full (max 2 peers)')
      // the refused announce changed nothing: not counted, and its seq not remembered
      expect(await s.scrape(['m'], at(31) - TTL, at(31))).toEqual([{ complete: 0, incomplete: 2, downloaded: 0 }])
      expect((await s.announce(ann('m', 'A', 2n, { now: at(32), left: 0, event: 'completed' }))).counts).toEqual({ complete: 1, incomplete: 1, downloaded: 1 })
      await s.announce(ann('other', 'C', 1n, { now: at(32) }))
      // B expires at 90: room for C
      expect((await s.announce(ann('m', 'C', 1n, { now: at(91) }))).counts).toEqual({ complete: 1, incomplete: 1, downloaded: 1 })
    })

    it('limits: swarms and peers in total; history yields to a new swarm', async () => {
      const s = await make({ maxManifests: 2, historyTtl: 1000 })
      await s.announce(ann('m1', 'A', 1n, { left: 0, event: 'completed' }))
      await s.announce(ann('m2', 'B', 1n))
      await expect(s.announce(ann('m3', 'C', 1n))).rejects.toThrow('tracker is full (max 2 swarms)')
      await expect(s.announce(ann('m3', 'C', 2n))).rejects.toThrow(TrackerFullError)
      // a new peer of a held swarm is fine
      await s.announce(ann('m2', 'C', 1n))
      // m1 becomes history only: it yields its place
      await s.announce(ann('m1', 'A', 2n, { event: 'stopped', now: at(1) }))
      await s.announce(ann('m3', 'C', 1n, { now: at(2) }))
      expect(sortSwarms(await s.swarms(at(2) - TTL, at(2))).map(w => w.manifest)).toEqual(['m2', 'm3'])

      const t = await make({ maxPeersTotal: 3 })
      await t.announce(ann('m1', 'A', 1n))
      await t.announce(ann('m1', 'B', 1n))
      await t.announce(ann('m2', 'A', 1n))
      await expect(t.announce(ann('m2', 'B', 1n))).rejects.toThrow('tracker is full (max 3 peers)')
      await t.announce(ann('m1', 'A', 2n, { now: at(1) }))
      await t.announce(ann('m1', 'B', 2n, { event: 'stopped', now: at(1) }))
      await t.announce(ann('m2', 'B', 1n, { now: at(2) }))
    })

    it('quotas: swarms per peer id, entries per host', async () => {
      const s = await make({ maxSwarmsPerPeer: 2, maxPeersPerIp: 3 })
      await s.announce(ann('m1', 'P', 1n, { host: 'h1' }))
      await s.announce(ann('m2', 'P', 1n, { host: 'h1' }))
      await expect(s.announce(ann('m3', 'P', 1n, { host: 'h1' }))).rejects.toThrow(QuotaExceededError)
      await expect(s.announce(ann('m3', 'P', 2n, { host: 'h1' }))).rejects.toThrow('peer is in too many swarms (max 2)')
      await s.announce(ann('m1', 'P', 2n, { host: 'h1', now: at(1) }))
      await s.announce(ann('m1', 'P', 3n, { host: 'h1', now: at(2), event: 'stopped' }))
      await s.announce(ann('m3', 'P', 1n, { host: 'h1', now: at(3) }))

      // h1 holds P in m2 and m3; one more, then full
      await s.announce(ann('m1', 'Q', 1n, { host: 'h1', now: at(3) }))
      await expect(s.announce(ann('m1', 'R', 1n, { host: 'h1', now: at(3) }))).rejects.toThrow('too many peers announced from this address (max 3)')
      await s.announce(ann('m1', 'R', 1n, { host: 'h2', now: at(3) }))
      // a known peer over its host's quota is re-accepted; moving to another host frees a place
      await s.announce(ann('m1', 'Q', 2n, { host: 'h1', now: at(4) }))
      await s.announce(ann('m1', 'Q', 3n, { host: 'h3', now: at(4) }))
      await s.announce(ann('m1', 'S', 1n, { host: 'h1', now: at(4) }))
      // expired entries do not hold a quota
      await s.announce(ann('m4', 'T', 1n, { host: 'h1', now: at(70) }))
    })
  })
}

describeStoreConformance('MemoryPeerStore', async init => new MemoryPeerStore(init))

describe.skipIf(!hasRedisServer())(`RedisPeerStore${hasRedisServer() ? '' : ` (skipped: ${NO_REDIS_REASON})`}`, () => {
  let server: RedisServer | undefined
  const open: RedisPeerStore[] = []
  let n = 0
  beforeAll(async () => { server = await startRedisServer() })
  afterEach(async () => { await Promise.all(open.splice(0).map(async s => { await s.close() })) })
  afterAll(async () => { await server?.stop() })

  describeStoreConformance('conformance', async init => {
    if (server == null) throw new Error('redis-server did not start')
    const store = new RedisPeerStore({ url: server.url, keyPrefix: `conformance:${process.pid}:${++n}:`, peerTtl: TTL / 1000, ...init })
    open.push(store)
    await store.start()
    return store
  })
})
