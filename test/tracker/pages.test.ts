// GET /stats, GET /, GET /metrics and the periodic log events, against a real server on port 0.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer, MemoryPeerStore, TOP_SWARMS } from '../../tracker/server.js'
import type { TrackerLogEvent, TrackerServer, TrackerServerInit } from '../../tracker/server.js'
import { announceQuery, getJson, makeCid, makePeer, recordParam } from './helpers.js'
import type { AnnounceQuery, TestPeer } from './helpers.js'

const servers: TrackerServer[] = []

afterEach(async () => {
  await Promise.all(servers.splice(0).map(async s => { await s.stop() }))
})

async function startTracker (init: TrackerServerInit = {}): Promise<{ tracker: TrackerServer, base: string, logs: string[], events: TrackerLogEvent[] }> {
  const logs: string[] = []
  const events: TrackerLogEvent[] = []
  const tracker = createTrackerServer({ port: 0, statsInterval: 0, log: (l) => { logs.push(l) }, ...init })
  servers.push(tracker)
  await tracker.start()
  return { tracker, base: `http://127.0.0.1:${tracker.port}`, logs, events }
}

let manifest: string
let otherManifest: string
let keys: TestPeer[]

beforeAll(async () => {
  manifest = await makeCid('pages-x')
  otherManifest = await makeCid('pages-y')
  keys = await Promise.all(Array.from({ length: 3 }, makePeer))
})

async function announce (base: string, i: number, over: AnnounceQuery = {}): Promise<number> {
  const record = await recordParam(keys[i].key, [`/ip4/127.0.0.1/tcp/${4000 + i}`])
  const r = await getJson(`${base}/announce?${announceQuery({ manifest, peer: keys[i].id, uploaded: 0, downloaded: 0, left: 100, record, ...over })}`)
  return r.status
}

/** A few announces (2 peers in one swarm, 1 in another, a completion) and one of each rejection. */
async function traffic (base: string): Promise<void> {
  expect(await announce(base, 0, { left: 0 })).toBe(200)
  expect(await announce(base, 1, { event: 'completed' })).toBe(200)
  expect(await announce(base, 2, { manifest: otherManifest })).toBe(200)
  expect(await announce(base, 0, { manifest: 'not-a-cid' })).toBe(400)
  expect((await getJson(`${base}/scrape?manifest=${manifest}`)).status).toBe(200)
  expect((await getJson(`${base}/nope`)).status).toBe(404)
}

interface Sample { name: string, labels: Record<string, string>, value: number }

/** Prometheus text exposition format (0.0.4): every line a comment or a sample, or it throws. */
function parsePrometheus (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type != null) { types.set(type[1], type[2]); continue }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$/.exec(line)
    if (m == null) throw new Error(`not Prometheus text: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    const value = m[3] === '+Inf' ? Infinity : Number(m[3])
    if (Number.isNaN(value)) throw new Error(`bad value: ${line}`)
    samples.push({ name: m[1], labels, value })
  }
  return { samples, types }
}

function valueOf (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe('GET /stats', () => {
  it('counts swarms, peers, announces and rejections by kind', async () => {
    const { base } = await startTracker()
    const empty = await getJson(`${base}/stats`)
    expect(empty.status).toBe(200)
    expect(empty.contentType).toMatch(/^application\/json/)
    expect(empty.body).toMatchObject({ swarms: 0, peers: 0, seeders: 0, leechers: 0, completed: 0, announces: {}, errors: {} })
    await traffic(base)
    const r = await getJson(`${base}/stats`)
    const body = r.body as unknown as Record<string, unknown>
    expect(body).toMatchObject({
      swarms: 2,
      peers: 3,
      seeders: 1,
      leechers: 2,
      completed: 1,
      announces: { ok: 3, bad_request: 1 },
      scrapes: { ok: 1 },
      errors: { bad_request: 1, not_found: 1 },
      storeErrors: 0
    })
    expect(typeof body.uptime).toBe('number')
  })

  it('other methods get 405; pages only at their exact path', async () => {
    const { base } = await startTracker()
    const post = await fetch(`${base}/stats`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    await post.text()
    for (const path of ['/stats/', '/stats.json', '/metrics/', '/index.html']) {
      expect((await getJson(`${base}${path}`)).status).toBe(404)
    }
  })
})

describe('GET /', () => {
  it('an HTML page of the counts and swarms, with a strict CSP and no script', async () => {
    const { base } = await startTracker()
    await traffic(base)
    const r = await fetch(`${base}/`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(r.headers.get('x-content-type-options')).toBe('nosniff')
    expect(r.headers.get('content-security-policy')).toMatch(/^default-src 'none'; style-src 'unsafe-inline'/)
    const html = await r.text()
    expect(html).not.toMatch(/<script/i)
    expect(html).toContain(manifest)
    expect(html).toContain(otherManifest)
    // the bigger swarm first
    expect(html.indexOf(manifest)).toBeLessThan(html.indexOf(otherManifest))
    expect(html).toMatch(/<td>bad_request<\/td><td>1<\/td>/)
  })

  it('escapes every printed value', async () => {
    const store = new MemoryPeerStore()
    const hostile = '<img src=x onerror=alert(1)>&"\''
    store.putPeer(hostile, { peerId: 'p', multiaddrs: [], left: 0, lastSeen: Date.now(), countedComplete: false, seq: 1n, host: 'h' }, 0)
    const { base } = await startTracker({ store })
    const html = await (await fetch(`${base}/`)).text()
    expect(html).not.toContain('<img')
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;')
  })

  it('lists the top swarms by peers only, and says how many there are', async () => {
    const store = new MemoryPeerStore()
    const now = Date.now()
    for (let i = 0; i < TOP_SWARMS + 5; i++) {
      store.putPeer(`swarm-${String(i).padStart(3, '0')}`, { peerId: 'p', multiaddrs: [], left: 1, lastSeen: now, countedComplete: false, seq: 1n, host: 'h' }, 0)
    }
    store.putPeer('swarm-104', { peerId: 'q', multiaddrs: [], left: 1, lastSeen: now, countedComplete: false, seq: 1n, host: 'h2' }, 0)
    const { base } = await startTracker({ store })
    const html = await (await fetch(`${base}/`)).text()
    expect(html).toContain(`top ${TOP_SWARMS} by peers of ${TOP_SWARMS + 5}`)
    expect(html.match(/<td>swarm-/g)).toHaveLength(TOP_SWARMS)
    expect(html).toContain('<td>swarm-104</td>') // two peers: first
    expect(html).not.toContain('<td>swarm-103</td>')
  })
})

describe('GET /metrics', () => {
  it('Prometheus text with counters, histograms and gauges after some traffic', async () => {
    const { base } = await startTracker()
    await traffic(base)
    const r = await fetch(`${base}/metrics`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const { samples, types } = parsePrometheus(await r.text())
    expect(types.get('bitswarm_tracker_announces_total')).toBe('counter')
    expect(types.get('bitswarm_tracker_announce_duration_seconds')).toBe('histogram')
    expect(types.get('bitswarm_tracker_scrape_duration_seconds')).toBe('histogram')
    expect(types.get('bitswarm_tracker_swarms')).toBe('gauge')
    expect(types.get('bitswarm_tracker_peers')).toBe('gauge')
    expect(types.get('bitswarm_tracker_store_errors_total')).toBe('counter')
    expect(valueOf(samples, 'bitswarm_tracker_announces_total', { outcome: 'ok' })).toBe(3)
    expect(valueOf(samples, 'bitswarm_tracker_announces_total', { outcome: 'bad_request' })).toBe(1)
    expect(valueOf(samples, 'bitswarm_tracker_rejected_announces_total', { reason: 'bad_request' })).toBe(1)
    expect(valueOf(samples, 'bitswarm_tracker_rejected_requests_total', { kind: 'not_found' })).toBe(1)
    expect(valueOf(samples, 'bitswarm_tracker_scrapes_total', { outcome: 'ok' })).toBe(1)
    expect(valueOf(samples, 'bitswarm_tracker_announce_duration_seconds_count', { outcome: 'ok' })).toBe(3)
    expect(valueOf(samples, 'bitswarm_tracker_announce_duration_seconds_bucket', { outcome: 'ok', le: '+Inf' })).toBe(3)
    expect(valueOf(samples, 'bitswarm_tracker_swarms')).toBe(2)
    expect(valueOf(samples, 'bitswarm_tracker_peers')).toBe(3)
    expect(valueOf(samples, 'bitswarm_tracker_seeders')).toBe(1)
    expect(valueOf(samples, 'bitswarm_tracker_store_errors_total')).toBe(0)
  })

  it('two servers in one process keep their own registries', async () => {
    const a = await startTracker()
    const b = await startTracker()
    expect(await announce(a.base, 0)).toBe(200)
    const count = async (base: string): Promise<number | undefined> =>
      valueOf(parsePrometheus(await (await fetch(`${base}/metrics`)).text()).samples, 'bitswarm_tracker_announces_total', { outcome: 'ok' })
    expect(await count(a.base)).toBe(1)
    expect(await count(b.base)).toBe(0)
  })

  it('counts store errors (not its refusals)', async () => {
    const store = new MemoryPeerStore()
    store.counts = () => { throw new Error('disk on fire') }
    const { base } = await startTracker({ store })
    expect(await announce(base, 0)).toBe(500)
    const { samples } = parsePrometheus(await (await fetch(`${base}/metrics`)).text())
    expect(valueOf(samples, 'bitswarm_tracker_store_errors_total')).toBeGreaterThanOrEqual(1)
    expect(valueOf(samples, 'bitswarm_tracker_announces_total', { outcome: 'internal' })).toBe(1)
  })
})

describe('periodic log', () => {
  it('with onEvent: a swarm event per swarm, and one rejected event per kind per interval, with a count', async () => {
    const events: TrackerLogEvent[] = []
    const { tracker, base, logs } = await startTracker({ onEvent: (e) => { events.push(e) } })
    expect(await announce(base, 0, { left: 0 })).toBe(200)
    // an attacker's flood: 40 bad announces and 10 unknown paths
    await Promise.all(Array.from({ length: 40 }, async () => { expect(await announce(base, 1, { manifest: 'nope' })).toBe(400) }))
    await Promise.all(Array.from({ length: 10 }, async (_, i) => { expect((await getJson(`${base}/x${i}`)).status).toBe(404) }))
    await tracker.logStats()
    const rejected = events.filter(e => e.event === 'rejected')
    expect(rejected).toEqual([
      { event: 'rejected', kind: 'bad_request', status: 400, count: 40, reason: 'manifest is not a CID' },
      { event: 'rejected', kind: 'not_found', status: 404, count: 10, reason: 'not found' }
    ])
    expect(events.filter(e => e.event === 'swarm')).toEqual([{ event: 'swarm', manifest, seeders: 1, leechers: 0, completed: 0 }])
    expect(logs.filter(l => /swarm|rejected/.test(l))).toEqual([]) // events instead of text
    // nothing new: no rejected event at the next interval
    events.length = 0
    await tracker.logStats()
    expect(events.filter(e => e.event === 'rejected')).toEqual([])
    expect(events.filter(e => e.event === 'swarm')).toHaveLength(1)
  })

  it('without onEvent: text lines, one per rejected kind', async () => {
    const { tracker, base, logs } = await startTracker()
    for (let i = 0; i < 5; i++) expect(await announce(base, 1, { manifest: 'nope' })).toBe(400)
    await tracker.logStats()
    expect(logs.filter(l => l.includes('rejected'))).toEqual(['tracker: rejected 5 requests (bad_request, 400), last: manifest is not a CID'])
  })
})
