import { connect } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer, MemoryPeerStore, TrackerServerError } from '../../tracker/server.js'
import type { TrackerServer, TrackerServerInit } from '../../tracker/server.js'
import { announceQuery, getJson, makeCid, makePeer, recordParam } from './helpers.js'
import type { AnnounceQuery, TestPeer } from './helpers.js'

const servers: TrackerServer[] = []

afterEach(async () => {
  await Promise.all(servers.splice(0).map(async s => { await s.stop() }))
})

async function startTracker (init: TrackerServerInit = {}): Promise<{ tracker: TrackerServer, base: string, logs: string[] }> {
  const logs: string[] = []
  const tracker = createTrackerServer({ port: 0, log: (l) => { logs.push(l) }, ...init })
  servers.push(tracker)
  await tracker.start()
  return { tracker, base: `http://127.0.0.1:${tracker.port}`, logs }
}

let manifest: string
let otherManifest: string
let keys: TestPeer[]
let peers: string[]

beforeAll(async () => {
  manifest = await makeCid('x')
  otherManifest = await makeCid('y')
  keys = await Promise.all(Array.from({ length: 6 }, makePeer))
  peers = keys.map(k => k.id)
})

function addrOf (i: number): string {
  return `/ip4/127.0.0.1/tcp/${4000 + i}`
}

interface Q extends AnnounceQuery {
  /** announcing peer (index into peers), default 0 */
  i?: number
  /** signed into the record; default [addrOf(i)] */
  addrs?: string[]
}

/** Announce query for peer `i` with a freshly signed record (unless `record` is given). */
async function q (over: Q = {}): Promise<string> {
  const { i = 0, addrs = [addrOf(i)], ...rest } = over
  const record = 'record' in over ? over.record : await recordParam(keys[i].key, addrs)
  return announceQuery({ manifest, peer: peers[i], uploaded: 0, downloaded: 0, left: 100, ...rest, record })
}

describe('tracker server', () => {
  it('serves announce on 127.0.0.1 and reports its URL', async () => {
    const tracker = createTrackerServer({ port: 0, log: () => {} })
    servers.push(tracker)
    expect(() => tracker.announceUrl).toThrow(TrackerServerError)
    await tracker.start()
    expect(tracker.port).toBeGreaterThan(0)
    expect(tracker.announceUrl).toBe(`http://127.0.0.1:${tracker.port}/announce`)
  })

  it('round trip: several peers, the caller excluded, /p2p suffix stripped', async () => {
    const { base } = await startTracker()
    for (let i = 1; i < 5; i++) {
      const addr = i === 1 ? `${addrOf(i)}/p2p/${peers[i]}` : addrOf(i)
      const r = await getJson(`${base}/announce?${await q({ i, addrs: [addr], left: i === 1 ? 0 : 100, event: 'started' })}`)
      expect(r.status).toBe(200)
    }
    const r = await getJson(`${base}/announce?${await q({ event: 'started' })}`)
    expect(r.status).toBe(200)
    expect(r.contentType).toMatch(/^application\/json/)
    expect(r.body.interval).toBe(30)
    expect(r.body.minInterval).toBe(5)
    expect(r.body.complete).toBe(1)
    expect(r.body.incomplete).toBe(4) // the caller counts too
    const got = r.body.peers ?? []
    expect(got.map(p => p.peerId).sort()).toEqual(peers.slice(1, 5).sort())
    for (const p of got) {
      const i = peers.indexOf(p.peerId)
      expect(p.multiaddrs).toEqual([addrOf(i)])
    }
  })

  it('numwant limits the answer to a random subset', async () => {
    const { base } = await startTracker()
    for (let i = 1; i < 6; i++) {
      await getJson(`${base}/announce?${await q({ i, addrs: [addrOf(i)] })}`)
    }
    const r = await getJson(`${base}/announce?${await q({ numwant: 2 })}`)
    expect(r.body.peers).toHaveLength(2)
    expect(r.body.peers?.some(p => p.peerId === peers[0])).toBe(false)
    const none = await getJson(`${base}/announce?${await q({ numwant: 0 })}`)
    expect(none.body.peers).toEqual([])
  })

  it('peers without addresses are counted but not handed out', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [] })}`)
    const r = await getJson(`${base}/announce?${await q()}`)
    expect(r.body.incomplete).toBe(2)
    expect(r.body.peers).toEqual([])
  })

  it('event=stopped removes the peer', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)] })}`)
    expect((await getJson(`${base}/announce?${await q()}`)).body.peers).toHaveLength(1)
    const stopped = await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)], event: 'stopped' })}`)
    expect(stopped.status).toBe(200)
    const r = await getJson(`${base}/announce?${await q()}`)
    expect(r.body.peers).toEqual([])
    expect(r.body.incomplete).toBe(1)
  })

  it('expires peers not heard from for peerTtl (injected clock) and sweeps them', async () => {
    let clock = 1_000_000
    const store = new MemoryPeerStore()
    const { tracker, base } = await startTracker({ now: () => clock, interval: 30, store })
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)] })}`)
    clock += 30_000
    await getJson(`${base}/announce?${await q({ i: 2, addrs: [addrOf(2)] })}`)
    clock += 30_001 // peers[1] is now 60.001 s old: past the default ttl of 2 × 30 s
    const r = await getJson(`${base}/announce?${await q()}`)
    expect(r.body.peers?.map(p => p.peerId)).toEqual([peers[2]])
    expect(r.body.incomplete).toBe(2)
    // filtered on read, still in memory until swept
    expect(store.peers(manifest, 0)).toHaveLength(3)
    expect(tracker.sweep()).toBe(1)
    expect(store.peers(manifest, 0)).toHaveLength(2)
    clock += 120_000
    expect(tracker.sweep()).toBe(2)
    expect(store.manifests()).toEqual([])
  })

  it('an explicit peerTtl overrides 2 × interval', async () => {
    let clock = 0
    const { base } = await startTracker({ now: () => clock, interval: 30, peerTtl: 5 })
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)] })}`)
    clock += 5_001
    expect((await getJson(`${base}/announce?${await q()}`)).body.peers).toEqual([])
  })

  it('scrape counts seeders, leechers and completions', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)], left: 0 })}`)
    await getJson(`${base}/announce?${await q({ i: 2, addrs: [addrOf(2)], left: 10 })}`)
    await getJson(`${base}/announce?${await q({ i: 3, addrs: [addrOf(3)], left: 10, event: 'started' })}`)
    await getJson(`${base}/announce?${await q({ i: 3, addrs: [addrOf(3)], left: 0, event: 'completed' })}`)
    // a retried completed is counted once
    await getJson(`${base}/announce?${await q({ i: 3, addrs: [addrOf(3)], left: 0, event: 'completed' })}`)
    await getJson(`${base}/announce?${await q({ manifest: otherManifest, i: 4, addrs: [addrOf(4)], left: 5 })}`)

    const one = await getJson(`${base}/scrape?manifest=${manifest}`)
    expect(one.status).toBe(200)
    expect(one.body.files).toEqual({ [manifest]: { complete: 2, incomplete: 1, downloaded: 1 } })

    const both = await getJson(`${base}/scrape?manifest=${manifest}&manifest=${otherManifest}`)
    expect(both.body.files).toEqual({
      [manifest]: { complete: 2, incomplete: 1, downloaded: 1 },
      [otherManifest]: { complete: 0, incomplete: 1, downloaded: 0 }
    })
    // no full scrape: its answer would grow with the tracker, the request would not
    const all = await getJson(`${base}/scrape`)
    expect(all.status).toBe(400)
    expect(all.body.error).toMatch(/missing manifest/)

    const unknown = await makeCid('nobody')
    const zero = await getJson(`${base}/scrape?manifest=${unknown}`)
    expect(zero.body.files).toEqual({ [unknown]: { complete: 0, incomplete: 0, downloaded: 0 } })

    // the completed count outlives the peers
    await getJson(`${base}/announce?${await q({ i: 3, addrs: [], event: 'stopped' })}`)
    expect((await getJson(`${base}/scrape?manifest=${manifest}`)).body.files?.[manifest].downloaded).toBe(1)

    const bad = await getJson(`${base}/scrape?manifest=nope`)
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatch(/CID/)
  })

  it('logs each swarm\'s counts periodically', async () => {
    const { base, logs } = await startTracker({ statsInterval: 20 })
    await getJson(`${base}/announce?${await q({ left: 0 })}`)
    await getJson(`${base}/announce?${await q({ i: 1, addrs: [addrOf(1)], event: 'completed' })}`)
    // a tick may land between the two announces: wait for one after both
    const find = (): string | undefined => logs.find(l => /seeders=1 leechers=1 completed=1/.test(l))
    await expect.poll(find).toBeDefined()
    const line = find() ?? ''
    expect(line).toContain(manifest.slice(0, 8))
    expect(line).not.toContain(manifest) // shortened
  })

  describe('bad parameters answer 400 with a reason', () => {
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      ['missing manifest', async () => await q({ manifest: undefined }), /missing manifest/],
      ['empty manifest', async () => await q({ manifest: '' }), /missing manifest/],
      ['bad CID', async () => await q({ manifest: 'not-a-cid' }), /manifest is not a CID/],
      ['CIDv0', async () => await q({ manifest: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N' }), /CIDv1/],
      ['missing peer', async () => await q({ peer: undefined }), /missing peer/],
      ['bad peer id', async () => await q({ peer: 'bob' }), /not a libp2p peer id/],
      ['missing record', async () => await q({ record: undefined }), /missing record/],
      ['an addr parameter', async () => await q({ addr: [addrOf(0)] }), /addresses must come in a signed peer record/],
      ['record addr with another /p2p id', async () => await q({ addrs: [`${addrOf(0)}/p2p/${peers[1]}`] }), /\/p2p id differs from peer/],
      ['too long addr in record', async () => await q({ addrs: ['/dns4/' + 'a'.repeat(260) + '/tcp/1'] }), /addr too long/],
      ['too many addrs in record', async () => await q({ addrs: Array.from({ length: 17 }, (_, i) => addrOf(i)) }), /too many addrs/],
      ['negative number', async () => await q({ left: -1 }), /left must be a non-negative integer/],
      ['non-number', async () => await q({ uploaded: 'lots' }), /uploaded must be a non-negative integer/],
      ['fraction', async () => await q({ downloaded: '1.5' }), /downloaded must be a non-negative integer/],
      ['exponent', async () => await q({ left: '1e3' }), /left must be a non-negative integer/],
      ['unsafe integer', async () => await q({ left: '9007199254740993' }), /left must be a non-negative integer/],
      ['missing left', async () => await q({ left: undefined }), /missing left/],
      ['bad numwant', async () => await q({ numwant: 'x' }), /numwant must be a non-negative integer/],
      ['unknown event', async () => await q({ event: 'paused' }), /unknown event/],
      ['duplicate manifest', async () => `${await q()}&manifest=${manifest}`, /duplicate manifest/],
      ['duplicate record', async () => `${await q()}&record=${(await q()).replace(/.*record=([^&]*).*/, '$1')}`, /duplicate record/]
    ]
    for (const [name, query, reason] of cases) {
      it(name, async () => {
        const { base } = await startTracker()
        const r = await getJson(`${base}/announce?${await query()}`)
        expect(r.status).toBe(400)
        expect(r.contentType).toMatch(/^application\/json/)
        expect(r.body.error).toMatch(reason)
      })
    }

    it('huge numwant is capped, not rejected; 16 addrs and event=empty are fine', async () => {
      const { base } = await startTracker()
      const many = Array.from({ length: 16 }, (_, i) => addrOf(i))
      for (let i = 1; i < 6; i++) await getJson(`${base}/announce?${await q({ i, addrs: many })}`)
      const r = await getJson(`${base}/announce?${await q({ numwant: '999999999', event: 'empty' })}`)
      expect(r.status).toBe(200)
      expect(r.body.peers).toHaveLength(5)
      expect(r.body.peers?.[0].multiaddrs).toHaveLength(16)
    })
  })

  it('404 on unknown paths, 405 on other methods', async () => {
    const { base } = await startTracker()
    for (const path of ['/announce/', '/announcex', '/favicon.ico', '/stats/', '/metricsx', '/index.html']) {
      const r = await getJson(`${base}${path}`)
      expect(r.status).toBe(404)
      expect(r.body.error).toBe('not found')
    }
    const post = await fetch(`${base}/announce?${await q()}`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
    await post.text()
  })

  it('answers 500 and logs when the store fails, and keeps serving', async () => {
    const store = new MemoryPeerStore()
    let broken = true
    const realPut = store.putPeer.bind(store)
    store.putPeer = (m, p, since) => {
      if (broken) throw new Error('disk on fire')
      realPut(m, p, since)
    }
    const { base, logs } = await startTracker({ store })
    const r = await getJson(`${base}/announce?${await q()}`)
    expect(r.status).toBe(500)
    expect(r.body.error).toBe('internal error') // no internals leaked
    expect(logs.some(l => l.includes('disk on fire'))).toBe(true)
    broken = false
    expect((await getJson(`${base}/announce?${await q()}`)).status).toBe(200)
  })

  it('survives garbage', async () => {
    const { base } = await startTracker()
    const bad = [
      `${base}/announce?manifest=%E0%A4%A&peer=%zz&addr=%`,
      `${base}/announce?${await q()}&addr=%2Fip4%2F%ZZ`,
      `${base}/announce?&&&===&manifest`,
      `${base}/announce?${await q({ record: 'AAAA\u0000' })}`,
      `${base}/announce?${'a'.repeat(9000)}`
    ]
    for (const url of bad) {
      const r = await getJson(url)
      expect(r.status).toBe(400)
      expect(typeof r.body.error).toBe('string')
    }
    // past node's header limit: node itself refuses it (431) without reaching us
    const huge = await fetch(`${base}/announce?${'a'.repeat(100_000)}`).catch(() => undefined)
    if (huge != null) expect(huge.status).toBeGreaterThanOrEqual(400)

    // not HTTP at all
    await new Promise<void>((resolve) => {
      const sock = connect(Number(new URL(base).port), '127.0.0.1', () => {
        sock.write('\u0000\u0001GARBAGE / HTTP/9.9\r\n\r\n\r\n')
      })
      sock.on('data', () => {})
      sock.on('error', () => { resolve() })
      sock.on('close', () => { resolve() })
    })

    const r = await getJson(`${base}/announce?${await q()}`)
    expect(r.status).toBe(200)
  })
})
