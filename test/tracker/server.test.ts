import { connect } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer, MemoryPeerStore, TrackerServerError } from '../../tracker/server.js'
import type { TrackerServer, TrackerServerInit } from '../../tracker/server.js'
import { announceQuery, getJson, makeCid, makePeerId } from './helpers.js'
import type { AnnounceQuery } from './helpers.js'

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
let peers: string[]

beforeAll(async () => {
  manifest = await makeCid('x')
  otherManifest = await makeCid('y')
  peers = await Promise.all(Array.from({ length: 6 }, makePeerId))
})

function addrOf (i: number): string {
  return `/ip4/10.0.0.${i + 1}/tcp/${4000 + i}`
}

function q (over: AnnounceQuery = {}): string {
  return announceQuery({ manifest, peer: peers[0], addr: [addrOf(0)], uploaded: 0, downloaded: 0, left: 100, ...over })
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
      const r = await getJson(`${base}/announce?${q({ peer: peers[i], addr: [addr], left: i === 1 ? 0 : 100, event: 'started' })}`)
      expect(r.status).toBe(200)
    }
    const r = await getJson(`${base}/announce?${q({ event: 'started' })}`)
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
      await getJson(`${base}/announce?${q({ peer: peers[i], addr: [addrOf(i)] })}`)
    }
    const r = await getJson(`${base}/announce?${q({ numwant: 2 })}`)
    expect(r.body.peers).toHaveLength(2)
    expect(r.body.peers?.some(p => p.peerId === peers[0])).toBe(false)
    const none = await getJson(`${base}/announce?${q({ numwant: 0 })}`)
    expect(none.body.peers).toEqual([])
  })

  it('peers without addresses are counted but not handed out', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [] })}`)
    const r = await getJson(`${base}/announce?${q()}`)
    expect(r.body.incomplete).toBe(2)
    expect(r.body.peers).toEqual([])
  })

  it('event=stopped removes the peer', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)] })}`)
    expect((await getJson(`${base}/announce?${q()}`)).body.peers).toHaveLength(1)
    const stopped = await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)], event: 'stopped' })}`)
    expect(stopped.status).toBe(200)
    const r = await getJson(`${base}/announce?${q()}`)
    expect(r.body.peers).toEqual([])
    expect(r.body.incomplete).toBe(1)
  })

  it('expires peers not heard from for peerTtl (injected clock) and sweeps them', async () => {
    let clock = 1_000_000
    const store = new MemoryPeerStore()
    const { tracker, base } = await startTracker({ now: () => clock, interval: 30, store })
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)] })}`)
    clock += 30_000
    await getJson(`${base}/announce?${q({ peer: peers[2], addr: [addrOf(2)] })}`)
    clock += 30_001 // peers[1] is now 60.001 s old: past the default ttl of 2 × 30 s
    const r = await getJson(`${base}/announce?${q()}`)
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
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)] })}`)
    clock += 5_001
    expect((await getJson(`${base}/announce?${q()}`)).body.peers).toEqual([])
  })

  it('scrape counts seeders, leechers and completions', async () => {
    const { base } = await startTracker()
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)], left: 0 })}`)
    await getJson(`${base}/announce?${q({ peer: peers[2], addr: [addrOf(2)], left: 10 })}`)
    await getJson(`${base}/announce?${q({ peer: peers[3], addr: [addrOf(3)], left: 10, event: 'started' })}`)
    await getJson(`${base}/announce?${q({ peer: peers[3], addr: [addrOf(3)], left: 0, event: 'completed' })}`)
    // a retried completed is counted once
    await getJson(`${base}/announce?${q({ peer: peers[3], addr: [addrOf(3)], left: 0, event: 'completed' })}`)
    await getJson(`${base}/announce?${q({ manifest: otherManifest, peer: peers[4], addr: [addrOf(4)], left: 5 })}`)

    const one = await getJson(`${base}/scrape?manifest=${manifest}`)
    expect(one.status).toBe(200)
    expect(one.body.files).toEqual({ [manifest]: { complete: 2, incomplete: 1, downloaded: 1 } })

    const all = await getJson(`${base}/scrape`)
    expect(all.body.files).toEqual({
      [manifest]: { complete: 2, incomplete: 1, downloaded: 1 },
      [otherManifest]: { complete: 0, incomplete: 1, downloaded: 0 }
    })

    const unknown = await makeCid('nobody')
    const zero = await getJson(`${base}/scrape?manifest=${unknown}`)
    expect(zero.body.files).toEqual({ [unknown]: { complete: 0, incomplete: 0, downloaded: 0 } })

    // the completed count outlives the peers
    await getJson(`${base}/announce?${q({ peer: peers[3], addr: [], event: 'stopped' })}`)
    expect((await getJson(`${base}/scrape?manifest=${manifest}`)).body.files?.[manifest].downloaded).toBe(1)

    const bad = await getJson(`${base}/scrape?manifest=nope`)
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatch(/CID/)
  })

  it('logs each swarm\'s counts periodically', async () => {
    const { base, logs } = await startTracker({ statsInterval: 20 })
    await getJson(`${base}/announce?${q({ left: 0 })}`)
    await getJson(`${base}/announce?${q({ peer: peers[1], addr: [addrOf(1)], event: 'completed' })}`)
    // a tick may land between the two announces: wait for one after both
    const find = (): string | undefined => logs.find(l => /seeders=1 leechers=1 completed=1/.test(l))
    await expect.poll(find).toBeDefined()
    const line = find() ?? ''
    expect(line).toContain(manifest.slice(0, 8))
    expect(line).not.toContain(manifest) // shortened
  })

  describe('bad parameters answer 400 with a reason', () => {
    const cases: Array<[string, () => string, RegExp]> = [
      ['missing manifest', () => q({ manifest: undefined }), /missing manifest/],
      ['empty manifest', () => q({ manifest: '' }), /missing manifest/],
      ['bad CID', () => q({ manifest: 'not-a-cid' }), /manifest is not a CID/],
      ['CIDv0', () => q({ manifest: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N' }), /CIDv1/],
      ['missing peer', () => q({ peer: undefined }), /missing peer/],
      ['bad peer id', () => q({ peer: 'bob' }), /not a libp2p peer id/],
      ['bad multiaddr', () => q({ addr: ['ip4/1.2.3.4'] }), /addr is not a multiaddr/],
      ['invalid ip in multiaddr', () => q({ addr: ['/ip4/999.0.0.1/tcp/1'] }), /addr is not a multiaddr/],
      ['addr with another /p2p id', () => q({ addr: [`${addrOf(0)}/p2p/${peers[1]}`] }), /differs from peer/],
      ['too long addr', () => q({ addr: ['/dns4/' + 'a'.repeat(260) + '/tcp/1'] }), /addr too long/],
      ['too many addrs', () => q({ addr: Array.from({ length: 17 }, (_, i) => addrOf(i)) }), /too many addrs/],
      ['negative number', () => q({ left: -1 }), /left must be a non-negative integer/],
      ['non-number', () => q({ uploaded: 'lots' }), /uploaded must be a non-negative integer/],
      ['fraction', () => q({ downloaded: '1.5' }), /downloaded must be a non-negative integer/],
      ['exponent', () => q({ left: '1e3' }), /left must be a non-negative integer/],
      ['unsafe integer', () => q({ left: '9007199254740993' }), /left must be a non-negative integer/],
      ['missing left', () => q({ left: undefined }), /missing left/],
      ['bad numwant', () => q({ numwant: 'x' }), /numwant must be a non-negative integer/],
      ['unknown event', () => q({ event: 'paused' }), /unknown event/],
      ['duplicate manifest', () => `${q()}&manifest=${manifest}`, /duplicate manifest/]
    ]
    for (const [name, query, reason] of cases) {
      it(name, async () => {
        const { base } = await startTracker()
        const r = await getJson(`${base}/announce?${query()}`)
        expect(r.status).toBe(400)
        expect(r.contentType).toMatch(/^application\/json/)
        expect(r.body.error).toMatch(reason)
      })
    }

    it('huge numwant is capped, not rejected; 16 addrs and event=empty are fine', async () => {
      const { base } = await startTracker()
      const many = Array.from({ length: 16 }, (_, i) => addrOf(i))
      for (let i = 1; i < 6; i++) await getJson(`${base}/announce?${q({ peer: peers[i], addr: many })}`)
      const r = await getJson(`${base}/announce?${q({ numwant: '999999999', event: 'empty' })}`)
      expect(r.status).toBe(200)
      expect(r.body.peers).toHaveLength(5)
      expect(r.body.peers?.[0].multiaddrs).toHaveLength(16)
    })
  })

  it('404 on unknown paths, 405 on other methods', async () => {
    const { base } = await startTracker()
    for (const path of ['/', '/announce/', '/announcex', '/favicon.ico']) {
      const r = await getJson(`${base}${path}`)
      expect(r.status).toBe(404)
      expect(r.body.error).toBe('not found')
    }
    const post = await fetch(`${base}/announce?${q()}`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
    await post.text()
  })

  it('answers 500 and logs when the store fails, and keeps serving', async () => {
    const store = new MemoryPeerStore()
    let broken = true
    const realPut = store.putPeer.bind(store)
    store.putPeer = (m, p) => {
      if (broken) throw new Error('disk on fire')
      realPut(m, p)
    }
    const { base, logs } = await startTracker({ store })
    const r = await getJson(`${base}/announce?${q()}`)
    expect(r.status).toBe(500)
    expect(r.body.error).toBe('internal error') // no internals leaked
    expect(logs.some(l => l.includes('disk on fire'))).toBe(true)
    broken = false
    expect((await getJson(`${base}/announce?${q()}`)).status).toBe(200)
  })

  it('survives garbage', async () => {
    const { base } = await startTracker()
    const bad = [
      `${base}/announce?manifest=%E0%A4%A&peer=%zz&addr=%`,
      `${base}/announce?${q()}&addr=%2Fip4%2F%ZZ`,
      `${base}/announce?&&&===&manifest`,
      `${base}/announce?${q({ addr: ['/ip4/1.2.3.4/tcp/1/\u0000'] })}`,
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

    const r = await getJson(`${base}/announce?${q()}`)
    expect(r.status).toBe(200)
  })
})
