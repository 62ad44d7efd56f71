import { createServer as createHttpServer, get } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { announce, nextRecordSeq, scrape, signPeerRecord, TrackerAnnouncer, TrackerError } from '../../src/discovery/tracker-client.js'
import type { AnnounceParams, TrackerAnnouncerInit } from '../../src/discovery/tracker-client.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import { createTrackerServer } from '../../tracker/server.js'
import type { TrackerServer, TrackerServerInit } from '../../tracker/server.js'
import { closeServer, makeCid, makePeer } from '../tracker/helpers.js'
import type { TestPeer } from '../tracker/helpers.js'

const trackers: TrackerServer[] = []
const fakes: Server[] = []
const announcers: TrackerAnnouncer[] = []

afterEach(async () => {
  vi.restoreAllMocks()
  await Promise.all(announcers.splice(0).map(async a => { await a.stop() }))
  await Promise.all(trackers.splice(0).map(async t => { await t.stop() }))
  await Promise.all(fakes.splice(0).map(closeServer))
})

async function startTracker (init: TrackerServerInit = {}): Promise<TrackerServer> {
  const t = createTrackerServer({ port: 0, log: () => {}, ...init })
  trackers.push(t)
  await t.start()
  return t
}

/** A hand-written tracker, to answer what a real one never would. */
async function startFake (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createHttpServer(handler)
  fakes.push(s)
  await new Promise<void>(resolve => { s.listen(0, '127.0.0.1', () => { resolve() }) })
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/announce`
}

function answer (status: number, body: string) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(body)
  }
}

/** A port nothing listens on (just freed). */
async function closedPort (): Promise<number> {
  const s = createNetServer()
  await new Promise<void>(resolve => { s.listen(0, '127.0.0.1', () => { resolve() }) })
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => { s.close(() => { resolve() }) })
  return port
}

let manifest: string
let keys: TestPeer[]
let ids: string[]

beforeAll(async () => {
  manifest = await makeCid('x')
  keys = await Promise.all(Array.from({ length: 4 }, makePeer))
  ids = keys.map(k => k.id)
})

/** Announce parameters of peer `i`, with a freshly signed record of its one address. */
async function params (i: number, over: Partial<AnnounceParams> = {}): Promise<AnnounceParams> {
  const record = await signPeerRecord(keys[i].key, [`/ip4/127.0.0.1/tcp/${5000 + i}`], nextRecordSeq())
  return { manifest, peerId: ids[i], record, uploaded: 0, downloaded: 0, left: 10, ...over }
}

describe('signed peer records', () => {
  it('signPeerRecord seals a PeerRecord the tracker can open and certify', async () => {
    const bytes = await signPeerRecord(keys[0].key, ['/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/2'], 42n)
    const envelope = await RecordEnvelope.openAndCertify(bytes, PeerRecord.DOMAIN)
    expect(envelope.publicKey.equals(keys[0].key.publicKey)).toBe(true)
    const record = PeerRecord.createFromProtobuf(envelope.payload)
    expect(record.peerId.toString()).toBe(ids[0])
    expect(record.multiaddrs.map(m => m.toString())).toEqual(['/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/2'])
    expect(record.seqNumber).toBe(42n)
  })

  it('nextRecordSeq strictly increases, even many times in one millisecond', () => {
    const seqs = Array.from({ length: 1000 }, nextRecordSeq)
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1])
    expect(seqs[0]).toBeGreaterThanOrEqual(BigInt(Date.now() - 1000) * 1000n)
  })

  it('the announcer signs a fresh record per announce: record=, no addr=, seq increasing, at most 16 addresses', async () => {
    const urls: URL[] = []
    const url = await startFake((req, res) => {
      urls.push(new URL(req.url ?? '/', 'http://x'))
      answer(200, '{"interval":30,"peers":[]}')(req, res)
    })
    const many = Array.from({ length: 20 }, (_, i) => `/ip4/10.0.0.${i + 1}/tcp/1`)
    const a = new TrackerAnnouncer({ announceUrl: url, manifest, privateKey: keys[1].key, getMultiaddrs: () => many, getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 1 }) })
    announcers.push(a)
    a.start()
    await expect.poll(() => a.status).toBe('ok')
    a.completed()
    await expect.poll(() => urls.length).toBeGreaterThanOrEqual(2)
    await a.stop()
    expect(urls.map(u => u.searchParams.get('event'))).toEqual(['started', 'completed', 'stopped'])
    let last = -1n
    for (const u of urls) {
      expect(u.searchParams.get('peer')).toBe(ids[1])
      expect(u.searchParams.has('addr')).toBe(false)
      const envelope = await RecordEnvelope.openAndCertify(Buffer.from(u.searchParams.get('record') ?? '', 'base64url'), PeerRecord.DOMAIN)
      const record = PeerRecord.createFromProtobuf(envelope.payload)
      expect(record.peerId.toString()).toBe(ids[1])
      expect(record.multiaddrs.map(m => m.toString())).toEqual(many.slice(0, 16))
      expect(record.seqNumber).toBeGreaterThan(last)
      last = record.seqNumber
    }
  })

  it('a replayed announce is refused by the real tracker', async () => {
    const t = await startTracker()
    const p = await params(1)
    await announce(t.announceUrl, p)
    const err = await announce(t.announceUrl, p).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TrackerError)
    expect((err as TrackerError).status).toBe(400)
    expect((err as TrackerError).message).toMatch(/not newer/)
  })
})

describe('announce / scrape', () => {
  it('round trip against the real tracker', async () => {
    const t = await startTracker()
    const first = await announce(t.announceUrl, await params(1, { event: 'started', left: 0 }))
    expect(first).toEqual({ interval: 30, minInterval: 5, complete: 1, incomplete: 0, peers: [] })
    const second = await announce(t.announceUrl, await params(2, { event: 'started' }))
    expect(second.peers).toEqual([{ peerId: ids[1], multiaddrs: ['/ip4/127.0.0.1/tcp/5001'] }])
    expect(second.complete).toBe(1)
    expect(second.incomplete).toBe(1)
    await announce(t.announceUrl, await params(2, { event: 'completed', left: 0 }))

    const files = await scrape(t.announceUrl, [manifest])
    expect(files).toEqual({ [manifest]: { complete: 2, incomplete: 0, downloaded: 1 } })
    // an empty scrape is refused (issue 10, item 11: it answered 1 MB for 60 bytes)
    await expect(scrape(t.announceUrl, [])).rejects.toThrow(/HTTP 400/)
  })

  it('a 400 becomes a TrackerError with the status and reason', async () => {
    const t = await startTracker()
    const err = await announce(t.announceUrl, await params(1, { manifest: 'nope' })).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TrackerError)
    expect((err as TrackerError).status).toBe(400)
    expect((err as TrackerError).message).toMatch(/manifest is not a CID/)
  })

  it('rejects URLs it cannot use', async () => {
    await expect(announce('not a url', await params(1))).rejects.toBeInstanceOf(TrackerError)
    await expect(announce('ftp://127.0.0.1/announce', await params(1))).rejects.toThrow(/scheme/)
    await expect(scrape('http://127.0.0.1:1/tracker', [manifest])).rejects.toThrow(/does not support scrape/)
  })

  it('derives the scrape URL from the announce URL (BEP 48), keeping its query', async () => {
    let seen = ''
    const url = await startFake((req, res) => {
      seen = req.url ?? ''
      answer(200, '{"files":{}}')(req, res)
    })
    await scrape(url.replace('/announce', '/x/announce.php') + '?key=k', [manifest])
    expect(seen).toBe(`/x/scrape.php?key=k&manifest=${manifest}`)
  })

  it('unreachable tracker -> TrackerError without status', async () => {
    const port = await closedPort()
    const err = await announce(`http://127.0.0.1:${port}/announce`, await params(1)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TrackerError)
    expect((err as TrackerError).status).toBeUndefined()
    expect((err as TrackerError).message).toMatch(/unreachable/)
  })

  it('follows redirects to the tracker (a few, as fetch would), and gives up on a loop', async () => {
    const t = await startTracker()
    // first a relative Location (/moved, same server), then an absolute one to the tracker
    const first = await startFake((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      res.writeHead(url.pathname === '/moved' ? 307 : 301, { location: url.pathname === '/moved' ? new URL(`/announce${url.search}`, t.announceUrl).href : `/moved${url.search}` })
      res.end()
    })
    const r = await announce(first, await params(1))
    expect(r.interval).toBeGreaterThan(0)
    expect((await scrape(t.announceUrl, [manifest]))[manifest].incomplete).toBe(1)

    let hops = 0
    const loop = await startFake((req, res) => {
      hops++
      res.writeHead(302, { location: req.url ?? '/' })
      res.end()
    })
    await expect(announce(loop, await params(2))).rejects.toThrow(/redirected more than 5 times/)
    expect(hops).toBe(6)
    // a Location that is no tracker URL
    const elsewhere = await startFake((_req, res) => { res.writeHead(302, { location: 'ftp://127.0.0.1/announce' }); res.end() })
    await expect(announce(elsewhere, await params(3))).rejects.toThrow(/unsupported tracker URL scheme/)
  })

  it('times out, and passes the caller\'s own abort through', async () => {
    const url = await startFake(() => { /* never answers */ })
    await expect(announce(url, await params(1), { timeout: 100 })).rejects.toThrow(/timed out after 100 ms/)
    const controller = new AbortController()
    const p = announce(url, await params(1), { signal: controller.signal })
    setTimeout(() => { controller.abort() }, 20)
    const err = await p.catch((e: unknown) => e)
    expect(err).not.toBeInstanceOf(TrackerError)
    expect((err as Error).name).toBe('AbortError')
  })

  describe('validates the tracker\'s answer', () => {
    const bad: Array<[string, number, string, RegExp]> = [
      ['not JSON', 200, 'hello', /not JSON/],
      ['JSON but not an object', 200, '[1,2]', /not an object/],
      ['null', 200, 'null', /not an object/],
      ['no interval', 200, '{"peers":[]}', /interval/],
      ['negative interval', 200, '{"interval":-1,"peers":[]}', /interval/],
      ['peers not a list', 200, '{"interval":30,"peers":{}}', /peers/],
      ['server error', 500, 'oops', /HTTP 500/],
      ['error object', 503, '{"error":"overloaded"}', /HTTP 503: overloaded/]
    ]
    for (const [name, status, body, reason] of bad) {
      it(name, async () => {
        const url = await startFake(answer(status, body))
        const err = await announce(url, await params(0)).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(TrackerError)
        expect((err as Error).message).toMatch(reason)
        if (status !== 200) expect((err as TrackerError).status).toBe(status)
      })
    }

    it('drops malformed peers entries, bad addresses and duplicates; leaves our own id to the peer book', async () => {
      const body = {
        interval: 30,
        complete: 'many', // bad counts read as 0
        incomplete: 3,
        peers: [
          5, null, 'x', [],
          { peerId: 'not-a-peer', multiaddrs: ['/ip4/1.2.3.4/tcp/1'] },
          { peerId: ids[1], multiaddrs: '/ip4/1.2.3.4/tcp/1' },
          { peerId: ids[1], multiaddrs: ['junk', 7, '/ip4/1.2.3.4/tcp/1'] },
          { peerId: ids[1], multiaddrs: ['/ip4/9.9.9.9/tcp/9'] },
          { peerId: ids[2], multiaddrs: ['junk'] },
          { peerId: ids[0], multiaddrs: ['/ip4/1.2.3.4/tcp/2'] }
        ]
      }
      const url = await startFake(answer(200, JSON.stringify(body)))
      const r = await announce(url, await params(0))
      // ids[0] is ours (params(0)): refused by the peer book, the one place that refuses our id
      expect(r).toEqual({ interval: 30, complete: 0, incomplete: 3, peers: [{ peerId: ids[1], multiaddrs: ['/ip4/1.2.3.4/tcp/1'] }, { peerId: ids[0], multiaddrs: ['/ip4/1.2.3.4/tcp/2'] }] })
    })

    it('refuses an oversized answer', async () => {
      const url = await startFake(answer(200, JSON.stringify({ interval: 30, peers: [], pad: 'x'.repeat(2 * 1024 * 1024) })))
      await expect(announce(url, await params(0))).rejects.toThrow(/too large/)
    })

    it('scrape drops malformed entries and keeps hostile keys as data', async () => {
      const url = await startFake(answer(200, '{"files":{"a":{"complete":1,"incomplete":2,"downloaded":3},"b":{"complete":-1,"incomplete":0,"downloaded":0},"c":7,"__proto__":{"complete":0,"incomplete":0,"downloaded":0}}}'))
      const files = await scrape(url, [])
      expect(Object.getPrototypeOf(files)).toBe(Object.prototype)
      expect(Object.keys(files).sort()).toEqual(['__proto__', 'a'])
      expect(files.a).toEqual({ complete: 1, incomplete: 2, downloaded: 3 })
      const noFiles = await startFake(answer(200, '{"nope":1}'))
      await expect(scrape(noFiles, [])).rejects.toBeInstanceOf(TrackerError)
    })
  })
})

describe('TrackerAnnouncer', () => {
  function makeAnnouncer (announceUrl: string, i: number, over: Partial<TrackerAnnouncerInit> = {}): { a: TrackerAnnouncer, peers: PeerAddress[][], statuses: string[], logs: string[] } {
    const peers: PeerAddress[][] = []
    const statuses: string[] = []
    const logs: string[] = []
    const a = new TrackerAnnouncer({
      announceUrl,
      manifest,
      privateKey: keys[i].key,
      getMultiaddrs: () => [`/ip4/127.0.0.1/tcp/${5000 + i}`],
      getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 10 }),
      log: (m) => { logs.push(m) },
      ...over
    })
    a.addEventListener('peers', (e) => { peers.push(e.detail) })
    a.addEventListener('status', (e) => { statuses.push(e.detail) })
    announcers.push(a)
    return { a, peers, statuses, logs }
  }

  it('announces started, reports peers and status ok, then re-announces every interval', async () => {
    const t = await startTracker({ interval: 1, minInterval: 1 })
    await announce(t.announceUrl, await params(1))
    const { a, peers, statuses } = makeAnnouncer(t.announceUrl, 0)
    expect(a.status).toBe('pending')
    expect(a.swarm).toBeUndefined()
    a.start()
    await expect.poll(() => peers.length).toBe(1)
    expect(peers[0]).toEqual([{ peerId: ids[1], multiaddrs: ['/ip4/127.0.0.1/tcp/5001'] }])
    expect(a.status).toBe('ok')
    // the tracker's count of the swarm, us included: two still downloading
    expect(a.swarm).toEqual({ seeders: 0, leechers: 2 })
    expect(statuses).toEqual(['ok'])
    expect((await scrape(t.announceUrl, [manifest]))[manifest].incomplete).toBe(2)
    await expect.poll(() => peers.length, { timeout: 3_000 }).toBeGreaterThanOrEqual(2)
    expect(statuses).toEqual(['ok']) // no event when nothing changed
  })

  it('goes down on a tracker it cannot reach, backs off, logs once, and recovers when a tracker appears', async () => {
    // every connection is cut at once (and counted): a tracker that cannot be reached
    const calls: number[] = []
    const cutter = createNetServer((socket) => { calls.push(Date.now()); socket.destroy() })
    await new Promise<void>(resolve => { cutter.listen(0, '127.0.0.1', () => { resolve() }) })
    const port = (cutter.address() as AddressInfo).port
    const url = `http://127.0.0.1:${port}/announce`
    const { a, peers, statuses, logs } = makeAnnouncer(url, 0, { minBackoff: 50, maxBackoff: 200 })
    a.start()
    await expect.poll(() => a.status).toBe('down')
    await new Promise(resolve => setTimeout(resolve, 700))
    // backoff 50, 100, 200, 200 …: a handful of tries, not one per 50 ms
    expect(calls.length).toBeGreaterThanOrEqual(3)
    expect(calls.length).toBeLessThanOrEqual(9)
    expect(calls[2] - calls[1]).toBeGreaterThan(calls[1] - calls[0])
    expect(logs.filter(l => l.includes('down'))).toHaveLength(1)

    await new Promise(resolve => { cutter.close(resolve) })
    await startTracker({ port })
    await expect.poll(() => a.status, { timeout: 3_000 }).toBe('ok')
    expect(statuses).toEqual(['down', 'ok'])
    expect(peers).toHaveLength(1)
    expect(logs.some(l => l.includes('reachable again'))).toBe(true)
    // the retried announce still carried event=started, so the peer is registered
    const t = trackers[0]
    expect((await scrape(t.announceUrl, [manifest]))[manifest].incomplete).toBe(1)
  })

  it('completed() announces event=completed once', async () => {
    const t = await startTracker()
    let left = 10
    const { a } = makeAnnouncer(t.announceUrl, 0, { getTransfer: () => ({ uploaded: 0, downloaded: 10 - left, left }) })
    a.start()
    await expect.poll(() => a.status).toBe('ok')
    left = 0
    a.completed()
    a.completed()
    await expect.poll(async () => (await scrape(t.announceUrl, [manifest]))[manifest]).toEqual({ complete: 1, incomplete: 0, downloaded: 1 })
  })

  it('completed() right after start() is not lost', async () => {
    const t = await startTracker()
    const { a } = makeAnnouncer(t.announceUrl, 0, { getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 0 }) })
    a.start()
    a.completed() // the started announce is still in flight
    await expect.poll(async () => (await scrape(t.announceUrl, [manifest]))[manifest]?.downloaded).toBe(1)
  })

  it('stop() sends event=stopped, then stays silent', async () => {
    const t = await startTracker({ interval: 1, minInterval: 1 })
    // the real tracker behind a recorder of every request it gets
    const seen: string[] = []
    const url = await startFake((req, res) => {
      seen.push(req.url ?? '')
      get(new URL(req.url ?? '/', t.announceUrl), (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }).once('error', () => { res.destroy() })
    })
    const { a } = makeAnnouncer(url, 0)
    a.start()
    await expect.poll(() => a.status).toBe('ok')
    expect((await scrape(t.announceUrl, [manifest]))[manifest].incomplete).toBe(1)

    const before = seen.length
    await a.stop()
    await a.stop() // idempotent
    const calls = seen.slice(before)
    expect(calls).toHaveLength(1)
    expect(calls[0]).toContain('event=stopped')
    expect((await scrape(t.announceUrl, [manifest]))[manifest]).toEqual({ complete: 0, incomplete: 0, downloaded: 0 })
    await new Promise(resolve => setTimeout(resolve, 1_300))
    expect(calls.filter(c => c.includes('/announce'))).toHaveLength(1)
    a.start() // a stopped announcer does not restart
    a.completed()
    expect(a.status).toBe('ok')
  })

  it('stop() right after completed() still reports the completion', async () => {
    const t = await startTracker({ interval: 1, minInterval: 1 })
    const { a } = makeAnnouncer(t.announceUrl, 0)
    a.start()
    await expect.poll(() => a.status).toBe('ok')
    a.completed()
    await a.stop()
    expect((await scrape(t.announceUrl, [manifest]))[manifest]).toEqual({ complete: 0, incomplete: 0, downloaded: 1 })
  })

  it('stop() never throws, and returns quickly when the tracker is gone', async () => {
    const port = await closedPort()
    const { a } = makeAnnouncer(`http://127.0.0.1:${port}/announce`, 0, { minBackoff: 10_000 })
    a.start()
    await expect.poll(() => a.status).toBe('down')
    const t0 = Date.now()
    await expect(a.stop()).resolves.toBeUndefined()
    expect(Date.now() - t0).toBeLessThan(2_500)

    const never = new TrackerAnnouncer({ announceUrl: 'nope', manifest, privateKey: keys[0].key, getMultiaddrs: () => [], getTransfer: () => ({ uploaded: 0, downloaded: 0, left: 0 }) })
    await expect(never.stop()).resolves.toBeUndefined() // never started: nothing to send
  })

  it('a throwing getTransfer counts as a failed round, not a crash', async () => {
    const t = await startTracker()
    let fail = true
    const { a } = makeAnnouncer(t.announceUrl, 0, {
      minBackoff: 20,
      getTransfer: () => {
        if (fail) throw new Error('not ready')
        return { uploaded: 0, downloaded: 0, left: 1 }
      }
    })
    a.start()
    await expect.poll(() => a.status).toBe('down')
    fail = false
    await expect.poll(() => a.status).toBe('ok')
  })
})
