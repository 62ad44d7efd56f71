// Table and property tests of hostile input against a real tracker on 127.0.0.1: whatever comes
// in, the answer is 200, or 400/404/405/503 with a JSON error; never a 500, never a crash, and the
// tracker keeps answering.
import { Agent, request } from 'node:http'
import fc from 'fast-check'
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer } from '../../tracker/server.js'
import type { TrackerServer } from '../../tracker/server.js'
import { b64url, makeCid, makePeer, nextSeq, rawPeerRecord, recordParam, sealPayload } from './helpers.js'
import type { TestPeer } from './helpers.js'

let tracker: TrackerServer
const logs: string[] = []
// one connection at a time, reused: the runs are sequential
const agent = new Agent({ keepAlive: true, maxSockets: 1 })
let peers: TestPeer[]
let manifests: string[]

beforeAll(async () => {
  // small limits, so valid announces hit 503 too
  tracker = createTrackerServer({ port: 0, log: (l) => { logs.push(l) }, maxPeersPerManifest: 3, maxManifests: 2 })
  await tracker.start()
  peers = await Promise.all(Array.from({ length: 6 }, makePeer))
  manifests = await Promise.all(['fuzz-a', 'fuzz-b', 'fuzz-c'].map(makeCid))
})

afterAll(async () => {
  agent.destroy()
  await tracker.stop()
})

interface Answer { status: number, body: { error?: string, peers?: unknown[] } }

/** A raw request-target, sent as is (fetch would normalize it). */
async function send (target: string, method = 'GET'): Promise<Answer> {
  return await new Promise<Answer>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: tracker.port, path: target, method, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        // GET / is the page for people (see pages.test.ts); every other answer is JSON
        if (method === 'GET' && res.statusCode === 200 && /^\/(\?|$)/.test(target)) {
          expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
          resolve({ status: 200, body: {} })
          return
        }
        try {
          expect(res.headers['content-type']).toMatch(/^application\/json/)
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] })
        } catch (err) {
          reject(new Error(`HTTP ${res.statusCode ?? '?'} for ${target.slice(0, 200)}: not a JSON answer: ${text.slice(0, 200)}`, { cause: err }))
        }
      })
    })
    req.setTimeout(5_000, () => { req.destroy(new Error(`no answer within 5 s to ${target.slice(0, 200)}`)) })
    req.on('error', reject)
    req.end()
  })
}

/** The invariant for every answer. */
function wellFormed (a: Answer, allowed: number[] = [200, 400, 404, 405, 503]): void {
  expect(allowed).toContain(a.status)
  if (a.status !== 200) expect(typeof a.body.error).toBe('string')
}

// printable ASCII without space: what a request line can carry (node refuses the rest itself)
const URL_CHARS = [...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))]
const urlText = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...URL_CHARS), maxLength })
const anyText = fc.oneof(urlText(40), fc.string({ maxLength: 40 }).map(s => encodeURIComponent(s)))

describe('tracker under hostile input', () => {
  it('random paths, methods and query strings', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('/announce', '/scrape', '/', '/announce/', '/scrape/x', '/%2e%2e/announce', '//announce', '/ANNOUNCE'),
      urlText(300),
      fc.constantFrom('GET', 'GET', 'GET', 'POST', 'DELETE', 'OPTIONS'),
      async (path, query, method) => {
        wellFormed(await send(`${path}?${query}`, method))
      }
    ), { numRuns: 300 })
  })

  it('random announce parameters: one bad field means 400, all good means 200 (or 503 when full)', async () => {
    // every field: a valid choice, or a hostile one that must get 400
    // valid choices are weighted so that about a third of the runs are entirely valid
    const valid = <T>(arb: fc.Arbitrary<T>): fc.WeightedArbitrary<T> => ({ arbitrary: arb, weight: 12 })
    const hostile = <T>(arb: fc.Arbitrary<T>): fc.WeightedArbitrary<T> => ({ arbitrary: arb, weight: 1 })
    const count = fc.oneof(
      valid(fc.record({ ok: fc.constant(true), text: fc.nat({ max: Number.MAX_SAFE_INTEGER }).map(String) })),
      hostile(fc.record({
        ok: fc.constant(false),
        text: fc.oneof(
          fc.integer({ max: -1 }).map(String),
          fc.double().map(String),
          fc.bigInt({ min: BigInt(Number.MAX_SAFE_INTEGER) + 1n, max: 10n ** 40n }).map(String),
          fc.constantFrom('', '1e3', '0x10', ' 1', '1 ', '+1', '-0', '1.0', 'NaN', 'Infinity', '١'),
          anyText
        ).filter(text => !isCount(text))
      }))
    )
    const field = fc.record({
      manifest: fc.oneof(
        valid(fc.constantFrom(0, 1, 2).map(i => ({ ok: true as const, i }))),
        hostile(fc.constantFrom('', 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', 'bafy', 'x'.repeat(2000)).map(text => ({ ok: false as const, text }))),
        hostile(anyText.map(text => ({ ok: false as const, text })))
      ),
      peer: fc.oneof(valid(fc.constant('self')), hostile(fc.constantFrom('other', 'garbage', 'missing'))),
      record: fc.oneof(valid(fc.constant('fresh')), hostile(fc.constantFrom('replay', 'replay', 'random', 'oversize', 'missing', 'tampered'))),
      event: fc.oneof(
        valid(fc.constantFrom(undefined, '', 'empty', 'started', 'completed', 'stopped').map(e => ({ ok: true, e }))),
        hostile(fc.constantFrom('paused', 'STARTED', 'stopped ').map(e => ({ ok: false, e })))
      ),
      uploaded: count,
      downloaded: count,
      left: count,
      numwant: fc.oneof(
        valid(fc.constant({ ok: true, text: undefined as string | undefined })),
        valid(fc.nat({ max: 1e15 }).map(n => ({ ok: true, text: String(n) as string | undefined }))),
        // an empty numwant means "the default", as an absent one does
        hostile(count.filter(c => c.text !== ''))
      ),
      addr: fc.nat({ max: 12 }).map(n => n === 0),
      duplicate: fc.oneof(valid(fc.constant(undefined)), hostile(fc.constantFrom('manifest', 'peer', 'record', 'left', 'event')))
    })
    const seen = new Map<number | string, number>()
    const lastAccepted = new Map<string, string>()

    await fc.assert(fc.asyncProperty(field, fc.constantFrom(0, 1, 2, 3, 4, 5), async (f, who) => {
      const me = peers[who]
      const manifest = f.manifest.ok ? manifests[f.manifest.i] : f.manifest.text
      const stateKey = `${manifest} ${me.id}`
      let ok = f.manifest.ok && f.event.ok && f.uploaded.ok && f.downloaded.ok && f.left.ok && f.numwant.ok && !f.addr && f.duplicate === undefined
      const p = new URLSearchParams()
      p.set('manifest', manifest)
      if (f.peer === 'self') p.set('peer', me.id)
      else if (f.peer === 'other') p.set('peer', peers[(who + 1) % peers.length].id)
      else if (f.peer === 'garbage') p.set('peer', 'QmNotAPeer')
      if (f.peer !== 'self') ok = false
      let record: string | undefined
      switch (f.record) {
        case 'fresh':
          record = await recordParam(me.key, [`/ip4/127.0.0.1/tcp/${4000 + who}`])
          break
        case 'replay':
          record = lastAccepted.get(stateKey)
          if (record === undefined) record = await recordParam(me.key, [`/ip4/127.0.0.1/tcp/${4000 + who}`])
          else ok = false
          break
        case 'random':
          record = b64url(new Uint8Array(Array.from({ length: 50 + who * 20 }, (_, i) => (i * 37 + who) & 0xff)))
          ok = false
          break
        case 'oversize':
          record = 'A'.repeat(5500)
          ok = false
          break
        case 'tampered': {
          const bytes = Buffer.from(await recordParam(me.key, ['/ip4/10.2.0.1/tcp/1']), 'base64url')
          bytes[bytes.length - 30] ^= 0x10
          record = b64url(bytes)
          ok = false
          break
        }
        case 'missing':
          ok = false
      }
      if (record !== undefined) p.set('record', record)
      if (f.event.e !== undefined) p.set('event', f.event.e)
      p.set('uploaded', f.uploaded.text)
      p.set('downloaded', f.downloaded.text)
      p.set('left', f.left.text)
      if (f.numwant.text !== undefined) p.set('numwant', f.numwant.text)
      if (f.addr) p.append('addr', '/ip4/6.6.6.6/tcp/6')
      if (f.duplicate !== undefined) p.append(f.duplicate, p.get(f.duplicate) ?? 'x')

      const a = await send(`/announce?${p.toString()}`)
      wellFormed(a)
      seen.set(ok ? a.status : 'bad', (seen.get(ok ? a.status : 'bad') ?? 0) + 1)
      if (ok) {
        expect([200, 503]).toContain(a.status)
        if (f.event.e === 'stopped') expect(a.status).toBe(200) // leaving never hits a limit
      } else {
        expect(a.status).toBe(400)
      }
      if (a.status === 200) {
        lastAccepted.set(stateKey, record ?? '')
        expect(a.body.peers?.length ?? 0).toBeLessThanOrEqual(200)
      }
    }), { numRuns: 400 })
    // the property is only worth something if each outcome actually happened
    expect(seen.get(200) ?? 0).toBeGreaterThan(20)
    expect(seen.get(503) ?? 0).toBeGreaterThan(5)
    expect(seen.get('bad') ?? 0).toBeGreaterThan(50)
  })

  it('validly signed payloads of random bytes, and peer records with random address bytes', async () => {
    const me = peers[0]
    const idBytes = peerIdFromString(me.id).toMultihash().bytes
    const announce = async (record: Uint8Array): Promise<Answer> =>
      await send(`/announce?manifest=${manifests[0]}&peer=${me.id}&record=${b64url(record)}&uploaded=0&downloaded=0&left=0&event=stopped`)

    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (payload) => {
      const a = await announce(await sealPayload(me.key, payload))
      wellFormed(a, [400])
    }), { numRuns: 100 })

    await fc.assert(fc.asyncProperty(
      fc.array(fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        // plausible starts: ip4, tcp, ip6, dns4, p2p, unknown codes
        fc.tuple(fc.constantFrom(4, 6, 41, 54, 421, 0x01, 0x3fff), fc.uint8Array({ maxLength: 30 })).map(([code, rest]) =>
          new Uint8Array([...(code > 0x7f ? [code & 0x7f | 0x80, code >> 7] : [code]), ...rest]))
      ), { maxLength: 20 }),
      async (addrs) => {
        const a = await announce(await sealPayload(me.key, rawPeerRecord(idBytes, nextSeq(), addrs)))
        // some random bytes are a fine multiaddr: then the (stopped) announce is simply accepted
        wellFormed(a, [200, 400])
      }
    ), { numRuns: 200 })
  })

  it('scrape with random manifests', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.oneof(anyText, fc.constantFrom(...manifests)), { maxLength: 120 }), async (ms) => {
      const a = await send(`/scrape?${ms.map(m => `manifest=${m}`).join('&')}`)
      wellFormed(a, [200, 400])
    }), { numRuns: 150 })
  })

  it('is still answering promptly, and never hit an internal error', async () => {
    const t0 = Date.now()
    const a = await send(`/announce?manifest=${manifests[0]}&peer=${peers[5].id}&record=${await recordParam(peers[5].key, [])}&uploaded=0&downloaded=0&left=0&event=stopped`)
    expect(a.status).toBe(200)
    expect(Date.now() - t0).toBeLessThan(1_000)
    expect(logs.filter(l => l.includes('internal error'))).toEqual([])
  })
})

/** what the tracker takes for a count: digits only, a safe integer */
function isCount (text: string): boolean {
  return /^[0-9]{1,16}$/.test(text) && Number.isSafeInteger(Number(text))
}
