// The live page's server (src/ui/server.ts) over a real HTTP server on port 0: the page and its
// headers, the server-sent events, a hostile name delivered as data only, the host check; the
// piece map's encoding (src/ui/snapshot.ts) and a Peer read as a source (src/ui/peer-source.ts).
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { emptySources, type SwarmStats } from '../../src/swarm/swarm.js'
import { peerSnapshot, type PeerLike } from '../../src/ui/peer-source.js'
import { RemoteSource } from '../../src/ui/remote-source.js'
import { CONTENT_SECURITY_POLICY, findStaticDir, startUiServer, type UiServer } from '../../src/ui/server.js'
import { encodePieceMap, type UiSnapshot, type UiSource } from '../../src/ui/snapshot.js'

const PAYLOAD = '<img src=x onerror=alert(1)>.bin'
const SCRIPT_PAYLOAD = '</script><script>window.__pwned=1</script>'

function stats (over: Partial<SwarmStats> = {}): SwarmStats {
  return {
    peers: 1, unchoking: 1, unchokedBy: 1, interested: 1, have: 2, pieces: 8, downloaded: 100, uploaded: 50,
    downloadRate: 10, uploadRate: 5, left: 1000, wasted: 0, hashFailures: 0, sources: emptySources(),
    reached: { direct: 1, relayed: 0, 'hole-punched': 0 }, downloadedFrom: emptySources(), banned: 0,
    ...over
  } as SwarmStats
}

/** A source whose numbers move with each snapshot. */
function fakeSource (name: string): UiSource & { calls: number } {
  const src = {
    name,
    calls: 0,
    snapshot: (): UiSnapshot => {
      src.calls++
      return {
        name,
        t: Date.now(),
        phase: 'downloading',
        cid: 'bafy-test',
        peerId: SCRIPT_PAYLOAD,
        manifest: { name: PAYLOAD, bytes: 1000, pieceLength: 16384, files: 1, fileNames: [PAYLOAD] },
        stats: stats({ have: src.calls, downloadRate: 1000 * src.calls }),
        map: encodePieceMap({ pieces: 8, have: i => i < Math.min(8, src.calls), inFlight: [7], availability: [1, 2, 3, 4, 5, 6, 7, 8] }),
        peers: [{ peerId: SCRIPT_PAYLOAD, address: `/ip4/127.0.0.1/tcp/1/${PAYLOAD}`, source: 'tracker', via: 'direct', progress: 0.5 }]
      }
    }
  }
  return src
}

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: string }

async function get (url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const u = new URL(path, url)
  return await new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Reads `count` server-sent events from /events, then closes. */
async function events (url: string, count: number, timeoutMs = 5000): Promise<{ headers: Record<string, string | string[] | undefined>, events: Array<{ event: string, data: string }> }> {
  const res = await fetch(new URL('events', url), { signal: AbortSignal.timeout(timeoutMs) })
  const out: Array<{ event: string, data: string }> = []
  const reader = res.body?.getReader()
  if (reader == null) throw new Error('no body')
  const decoder = new TextDecoder()
  let buf = ''
  while (out.length < count) {
    const { value, done } = await reader.read()
    if (done) break
    buf += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event != null && data != null) out.push({ event, data })
    }
  }
  await reader.cancel()
  return { headers: Object.fromEntries(res.headers), events: out }
}

let server: UiServer | undefined
afterEach(async () => {
  await server?.stop()
  server = undefined
})

describe('the live page server', () => {
  it('serves the page with a strict Content-Security-Policy, its script as a file', async () => {
    server = await startUiServer({ sources: [fakeSource('a')], interval: 250 })
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const page = await get(server.url, '/')
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    const csp = String(page.headers['content-security-policy'])
    expect(csp).toBe(CONTENT_SECURITY_POLICY)
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("require-trusted-types-for 'script'")
    expect(csp).not.toContain('unsafe')
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    expect(page.headers['x-frame-options']).toBe('DENY')
    // no inline script: every <script> has a src
    expect(page.body).toMatch(/<script src="app\.js"/)
    expect(page.body.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull()
    // the page itself carries no data
    expect(page.body).not.toContain('img src')
    for (const [path, type] of [['/app.js', 'text/javascript; charset=utf-8'], ['/style.css', 'text/css; charset=utf-8']]) {
      const r = await get(server.url, path)
      expect(r.status, path).toBe(200)
      expect(r.headers['content-type']).toBe(type)
      expect(r.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY)
    }
  })

  it("the page's script builds the DOM from data with textContent only", () => {
    // the code, without its comments (which may name what it never does)
    const js = readFileSync(findStaticDir() + 'app.js', 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'setTimeout(\'', 'DOMParser', 'createContextualFragment']) {
      expect(js.includes(sink), sink).toBe(false)
    }
    expect(js).toContain('textContent')
  })

  it('streams a snapshot each interval over server-sent events, the rate history first', async () => {
    const src = fakeSource('leecher1')
    server = await startUiServer({ sources: [src, fakeSource('leecher2')], interval: 250, title: 'test page' })
    const { headers, events: got } = await events(server.url, 3)
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY)
    expect(got.map(e => e.event)).toEqual(['snapshot', 'snapshot', 'snapshot'])
    const msgs = got.map(e => JSON.parse(e.data) as { t: number, title: string, sources: UiSnapshot[], history?: number[][][] })
    expect(msgs[0].title).toBe('test page')
    expect(msgs[0].sources.map(s => s.name)).toEqual(['leecher1', 'leecher2'])
    // the first message carries the history; the later ones do not
    expect(msgs[0].history?.length).toBe(2)
    expect(msgs[0].history?.[0][0]).toHaveLength(3)
    expect(msgs[1].history).toBeUndefined()
    // values move between snapshots
    expect(msgs[2].t).toBeGreaterThan(msgs[1].t)
    expect(msgs[2].sources[0].stats?.have).toBeGreaterThan(msgs[1].sources[0].stats?.have ?? Infinity)
    // the piece map is compact: base64 bitfields and availability bytes
    const map = msgs[1].sources[0].map
    expect(map).toMatchObject({ pieces: 8, cells: 8, bin: 1, inFlight: Buffer.from([0x01]).toString('base64'), availability: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]).toString('base64') })
  })

  it('delivers a hostile name as data only: JSON strings in the event stream, never in the page', async () => {
    server = await startUiServer({ sources: [fakeSource('x')], interval: 250 })
    const { events: got } = await events(server.url, 1)
    const raw = got[0].data
    // one JSON line whose strings hold the names exactly
    const msg = JSON.parse(raw) as { sources: UiSnapshot[] }
    expect(msg.sources[0].manifest?.name).toBe(PAYLOAD)
    expect(msg.sources[0].manifest?.fileNames).toEqual([PAYLOAD])
    expect(msg.sources[0].peerId).toBe(SCRIPT_PAYLOAD)
    expect(msg.sources[0].peers?.[0].address).toContain(PAYLOAD)
    // and the event stream cannot be broken into more events by a name: no raw newline
    expect(raw).not.toMatch(/[\r\n]/)
    // the static page never includes them
    for (const path of ['/', '/app.js', '/style.css']) {
      const r = await get(server.url, path)
      expect(r.body).not.toContain('onerror=alert')
      expect(r.body).not.toContain('__pwned')
    }
    // /snapshot.json is JSON, not HTML
    const snap = await get(server.url, '/snapshot.json')
    expect(snap.headers['content-type']).toBe('application/json; charset=utf-8')
    expect((JSON.parse(snap.body) as { sources: UiSnapshot[] }).sources[0].manifest?.name).toBe(PAYLOAD)
  })

  it('is read-only, serves its three files only, and refuses other hosts (DNS rebinding)', async () => {
    server = await startUiServer({ sources: [fakeSource('x')], interval: 250 })
    expect((await get(server.url, '/', {}, 'POST')).status).toBe(405)
    expect((await get(server.url, '/events', {}, 'PUT')).status).toBe(405)
    for (const path of ['/package.json', '/../package.json', '/%2e%2e/package.json', '/static/app.js', '/server.ts', '/app.js/']) {
      expect((await get(server.url, path)).status, path).toBe(404)
    }
    const port = server.address.port
    expect((await get(server.url, '/', { Host: `evil.example:${port}` })).status).toBe(421)
    expect((await get(server.url, '/events', { Host: 'rebind.attacker.test' })).status).toBe(421)
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      expect((await get(server.url, '/', { Host: host })).status, host).toBe(200)
    }
  })

  it('binds loopback by default and stops with pages still open', async () => {
    server = await startUiServer({ sources: [fakeSource('x')], interval: 250 })
    expect(server.address.address).toBe('127.0.0.1')
    const res = await fetch(new URL('events', server.url))
    const reader = res.body?.getReader()
    await reader?.read()
    const stopped = server.stop()
    // the stream ends with the server
    for (;;) { const r = await reader?.read(); if (r == null || r.done) break }
    await stopped
    server = undefined
  })

  it('keeps showing the other sources when one throws, and a source with nothing yet as starting', async () => {
    const broken: UiSource = { name: 'broken', snapshot: () => { throw new Error('boom') } }
    const empty: UiSource = { name: 'empty', snapshot: () => undefined }
    server = await startUiServer({ sources: [broken, empty, fakeSource('ok')], interval: 250 })
    const { events: got } = await events(server.url, 1)
    const msg = JSON.parse(got[0].data) as { sources: UiSnapshot[] }
    expect(msg.sources.map(s => [s.name, s.phase])).toEqual([['broken', 'starting'], ['empty', 'starting'], ['ok', 'downloading']])
  })

  it("the demo's page polls another page's snapshot (RemoteSource)", async () => {
    server = await startUiServer({ sources: [fakeSource('remote')], interval: 250 })
    const remote = new RemoteSource('leecher9', Promise.resolve(server.url), 250)
    try {
      const deadline = Date.now() + 5000
      while (remote.snapshot() == null && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
      const snap = remote.snapshot()
      expect(snap?.name).toBe('leecher9')
      expect(snap?.manifest?.name).toBe(PAYLOAD)
    } finally {
      remote.stop()
    }
  })
})

describe('the piece map', () => {
  it('is a BEP 3 bitfield per piece when small', () => {
    const m = encodePieceMap({ pieces: 10, have: i => i === 0 || i === 9, inFlight: [1, 8, 99, -1], availability: [0, 1, 2, 3, 4, 5, 6, 7, 8, 300] })
    expect(m).toMatchObject({ pieces: 10, cells: 10, bin: 1 })
    expect([...Buffer.from(m.have, 'base64')]).toEqual([0x80, 0x40])
    expect(m.some).toBe(m.have)
    expect([...Buffer.from(m.inFlight, 'base64')]).toEqual([0x40, 0x80])
    expect([...Buffer.from(m.availability ?? '', 'base64')]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 255])
  })

  it('is binned for large torrents: every cell its pieces, the rarest availability', () => {
    const pieces = 100_000
    const m = encodePieceMap({ pieces, have: i => i < 50_000 || i === 99_999, inFlight: [50_000], availability: new Uint8Array(pieces).fill(3) }, 2048)
    expect(m.cells).toBeLessThanOrEqual(2048)
    expect(m.bin).toBe(Math.ceil(pieces / 2048))
    expect(m.cells).toBe(Math.ceil(pieces / m.bin))
    const have = Buffer.from(m.have, 'base64')
    const some = Buffer.from(m.some, 'base64')
    const bitOf = (b: Buffer, i: number): boolean => (b[i >> 3] & (0x80 >> (i & 7))) !== 0
    const split = Math.floor(50_000 / m.bin)
    expect(bitOf(have, 0)).toBe(true)
    expect(bitOf(have, split - 1)).toBe(true)
    // the last cell holds one piece we have: some, not all
    expect(bitOf(have, m.cells - 1)).toBe(false)
    expect(bitOf(some, m.cells - 1)).toBe(true)
    expect(bitOf(Buffer.from(m.inFlight, 'base64'), split)).toBe(true)
    expect(new Set(Buffer.from(m.availability ?? '', 'base64'))).toEqual(new Set([3]))
    // compact: a few kilobytes whatever the torrent's size
    expect(JSON.stringify(m).length).toBeLessThan(4096)
  })

  it('has no availability when it is not known, and nothing for no pieces', () => {
    expect(encodePieceMap({ pieces: 3, have: () => false, inFlight: [] }).availability).toBeUndefined()
    expect(encodePieceMap({ pieces: 0, have: () => false, inFlight: [] })).toMatchObject({ cells: 0, have: '' })
  })
})

describe('a Peer as a source', () => {
  const base = {
    cid: { toString: () => 'bafy-peer' },
    peerId: '12D3KooWpeer',
    stats: () => stats()
  }

  it('sends its manifest, piece map and peers', () => {
    const have = new Bitfield(4)
    have.set(0)
    const peer = {
      ...base,
      phase: 'downloading',
      manifest: { version: 2, name: PAYLOAD, length: 3, pieceLength: 16384, files: [{ path: ['a', PAYLOAD], length: 3 }], folders: [], pieces: new Uint8Array(32) },
      pieceMap: () => ({ pieces: 4, have, inFlight: [2], availability: new Uint8Array([1, 1, 0, 2]) }),
      peerInfos: () => [{ peerId: 'p1', address: '/ip4/127.0.0.1/tcp/9', source: 'tracker', via: 'direct', progress: 0.123456, downloadRate: 10.4, uploadRate: 0, amChoking: true, amInterested: true, peerChoking: false, peerInterested: false, optimistic: false, snubbed: false }]
    } as unknown as PeerLike
    const snap = peerSnapshot('leecher', peer, 1234)
    expect(snap).toMatchObject({ name: 'leecher', t: 1234, phase: 'downloading', cid: 'bafy-peer', peerId: '12D3KooWpeer' })
    expect(snap.manifest).toEqual({ name: PAYLOAD, bytes: 3, pieceLength: 16384, files: 1, fileNames: [`a/${PAYLOAD}`] })
    expect(snap.map).toMatchObject({ pieces: 4, cells: 4, bin: 1 })
    expect(snap.peers).toEqual([{ peerId: 'p1', address: '/ip4/127.0.0.1/tcp/9', source: 'tracker', via: 'direct', progress: 0.1235, downloadRate: 10, uploadRate: 0, amChoking: true, amInterested: true, peerChoking: false, peerInterested: false, optimistic: false, snubbed: false }])
  })

  it('has no map before the manifest is known', () => {
    const peer = {
      ...base,
      phase: 'manifest',
      manifest: undefined,
      pieceMap: () => ({ pieces: 0, have: new Bitfield(0), inFlight: [], availability: new Uint8Array(0) }),
      peerInfos: () => []
    } as unknown as PeerLike
    const snap = peerSnapshot('get', peer)
    expect(snap.map).toBeUndefined()
    expect(snap.manifest).toBeUndefined()
    expect(snap.peers).toEqual([])
  })
})
