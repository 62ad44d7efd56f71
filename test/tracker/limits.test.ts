// Memory stays bounded: peers per swarm, swarms, peers in total, history and replay memory.
import { beforeAll, describe, expect, it } from 'vitest'
import { handleAnnounce } from '../../tracker/logic.js'
import type { AnnounceRequest, LogicOptions } from '../../tracker/logic.js'
import { createTrackerServer, MemoryPeerStore, StoreConfigError, TrackerFullError, TrackerServerError } from '../../tracker/server.js'
import type { PeerEntry } from '../../tracker/server.js'
import { announceQuery, getJson, makeCid, makePeer, recordParam, useTrackers } from './helpers.js'
import type { TestPeer } from './helpers.js'

const startTracker = useTrackers()

let manifests: string[]
let peers: TestPeer[]

beforeAll(async () => {
  manifests = await Promise.all(['a', 'b', 'c', 'd'].map(makeCid))
  peers = await Promise.all(Array.from({ length: 5 }, makePeer))
})

async function announce (base: string, i: number, m = 0, over: { event?: string, left?: number } = {}): Promise<Awaited<ReturnType<typeof getJson>>> {
  const record = await recordParam(peers[i].key, [`/ip4/127.0.0.1/tcp/${4001 + i}`])
  return await getJson(`${base}/announce?${announceQuery({ manifest: manifests[m], peer: peers[i].id, record, uploaded: 0, downloaded: 0, left: 1, ...over })}`)
}

async function expect503 (base: string, i: number, m: number, reason: RegExp): Promise<void> {
  const res = await fetch(`${base}/announce?${announceQuery({ manifest: manifests[m], peer: peers[i].id, record: await recordParam(peers[i].key, []), uploaded: 0, downloaded: 0, left: 1 })}`)
  expect(res.status).toBe(503)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  expect(res.headers.get('retry-after')).toBe('30')
  expect(((await res.json()) as { error: string }).error).toMatch(reason)
}

describe('tracker limits', () => {
  it('maxPeersPerManifest: a new peer past it gets 503; known peers and other swarms keep working', async () => {
    const { base } = await startTracker({ maxPeersPerManifest: 2 })
    expect((await announce(base, 0)).status).toBe(200)
    expect((await announce(base, 1)).status).toBe(200)
    await expect503(base, 2, 0, /swarm is full \(max 2 peers\)/)
    expect((await announce(base, 0)).status).toBe(200)
    expect((await announce(base, 2, 1)).status).toBe(200)
    // a stopped peer frees its slot
    expect((await announce(base, 1, 0, { event: 'stopped' })).status).toBe(200)
    expect((await announce(base, 2)).status).toBe(200)
  })

  it('expired peers are swept first, so the limit counts live peers', async () => {
    let clock = 0
    const { base } = await startTracker({ maxPeersPerManifest: 2, interval: 30, now: () => clock })
    await announce(base, 0)
    clock += 30_000
    await announce(base, 1)
    await expect503(base, 2, 0, /swarm is full/)
    clock += 30_001 // peer 0 has now expired (ttl 60 s), peer 1 has not
    const r = await announce(base, 2)
    expect(r.status).toBe(200)
    expect(r.body.peers?.map(p => p.peerId)).toEqual([peers[1].id])
    await expect503(base, 3, 0, /swarm is full/)
  })

  it('maxPeersTotal counts peers across swarms', async () => {
    const { base } = await startTracker({ maxPeersTotal: 3 })
    expect((await announce(base, 0, 0)).status).toBe(200)
    expect((await announce(base, 1, 1)).status).toBe(200)
    expect((await announce(base, 2, 2)).status).toBe(200)
    await expect503(base, 3, 0, /tracker is full \(max 3 peers\)/)
    await expect503(base, 0, 3, /tracker is full \(max 3 peers\)/) // a known peer in a new swarm is a new entry
    expect((await announce(base, 1, 1)).status).toBe(200)
  })

  it('maxManifests: a new swarm past it gets 503, but a swarm kept only for its history yields', async () => {
    const { base } = await startTracker({ maxManifests: 2 })
    expect((await announce(base, 0, 0, { event: 'completed', left: 0 })).status).toBe(200)
    expect((await announce(base, 1, 1)).status).toBe(200)
    await expect503(base, 2, 2, /tracker is full \(max 2 swarms\)/)
    expect((await announce(base, 3, 1)).status).toBe(200) // an existing swarm still takes new peers
    // swarm 0 loses its last peer: only its completed counter is left
    expect((await announce(base, 0, 0, { event: 'stopped' })).status).toBe(200)
    expect((await getJson(`${base}/scrape?manifest=${manifests[0]}`)).body.files?.[manifests[0]].downloaded).toBe(1)
    expect((await announce(base, 2, 2)).status).toBe(200)
    expect((await getJson(`${base}/scrape?manifest=${manifests[0]}`)).body.files?.[manifests[0]].downloaded).toBe(0)
    await expect503(base, 4, 3, /max 2 swarms/)
  })

  it('a refused announce changes nothing (no completion counted)', async () => {
    const { base } = await startTracker({ maxPeersPerManifest: 1 })
    await announce(base, 0)
    const r = await announce(base, 1, 0, { event: 'completed', left: 0 })
    expect(r.status).toBe(503)
    expect((await getJson(`${base}/scrape?manifest=${manifests[0]}`)).body.files?.[manifests[0]]).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
  })

  it('completed counters of swarms without peers are dropped after historyTtl', async () => {
    let clock = 0
    const { tracker, base } = await startTracker({ historyTtl: 100, now: () => clock })
    await announce(base, 0, 0, { event: 'completed', left: 0 })
    await announce(base, 0, 0, { event: 'stopped' })
    clock += 100_000
    tracker.sweep()
    expect((await getJson(`${base}/scrape?manifest=${manifests[0]}`)).body.files).toEqual({ [manifests[0]]: { complete: 0, incomplete: 0, downloaded: 1 } })
    clock += 1
    tracker.sweep()
    expect((await getJson(`${base}/scrape?manifest=${manifests[0]}`)).body.files).toEqual({ [manifests[0]]: { complete: 0, incomplete: 0, downloaded: 0 } })
  })

  it('limits go to the store when a store is given; bad limits are refused', () => {
    expect(() => createTrackerServer({ store: new MemoryPeerStore(), maxManifests: 5 })).toThrow(TrackerServerError)
    expect(() => new MemoryPeerStore({ maxPeersTotal: 0 })).toThrow(StoreConfigError)
    expect(() => new MemoryPeerStore({ maxPeersPerManifest: 1.5 })).toThrow(StoreConfigError)
    expect(() => new MemoryPeerStore({ replayWindow: -1 })).toThrow(StoreConfigError)
  })
})

describe('MemoryPeerStore memory', () => {
  const opts: LogicOptions = { interval: 30, minInterval: 5, peerTtl: 60, random: Math.random }
  let seq = 0n
  const req = (peerId: string, over: Partial<AnnounceRequest> = {}): AnnounceRequest =>
    ({ manifest: 'm', peerId, multiaddrs: ['/ip4/10.0.0.1/tcp/1'], ip: '10.0.0.1', seq: ++seq, uploaded: 0, downloaded: 0, left: 1, numwant: 50, ...over })
  const entry = (peerId: string, lastSeen: number): PeerEntry =>
    ({ peerId, multiaddrs: [], left: 1, lastSeen, countedComplete: false, seq: ++seq, host: '10.0.0.1' })

  it('remembers the seqs of left peers for replayWindow, at most maxPeersTotal of them', async () => {
    const store = new MemoryPeerStore({ maxPeersTotal: 3, replayWindow: 10 })
    for (let i = 0; i < 5; i++) await handleAnnounce(store, req(`p${i}`, { event: 'stopped', seq: 100n }), 0, opts)
    expect(store.rememberedSize).toBe(3)
    expect(store.lastSeq('m', 'p0', 0)).toBeUndefined() // the oldest memory went first
    expect(store.lastSeq('m', 'p4', 0)).toBe(100n)
    expect(store.lastSeq('m', 'p4', 10_000)).toBe(100n)
    expect(store.lastSeq('m', 'p4', 10_001)).toBeUndefined() // window closed
    store.sweep(0, 10_001)
    expect(store.rememberedSize).toBe(0)
  })

  it('a rejoining peer is no longer "remembered"; its entry holds the seq', async () => {
    const store = new MemoryPeerStore()
    await handleAnnounce(store, req('p', { event: 'stopped', seq: 5n }), 0, opts)
    await expect(handleAnnounce(store, req('p', { seq: 5n }), 0, opts)).rejects.toThrow(/not newer/)
    await handleAnnounce(store, req('p', { seq: 6n }), 0, opts)
    expect(store.rememberedSize).toBe(0)
    expect(store.lastSeq('m', 'p', 0)).toBe(6n)
  })

  it('admission sweeps only the expired front (oldest announce first), not live peers', () => {
    const store = new MemoryPeerStore({ maxPeersTotal: 3 })
    store.putPeer('m', entry('a', 0), 0)
    store.putPeer('m', entry('b', 10), 0)
    store.putPeer('m', entry('c', 20), 0)
    store.putPeer('m', entry('a', 30), 0) // a announced again: now the newest
    // b (seen at 10) has expired by 15 and sits at the front: it makes room for d
    store.putPeer('m', entry('d', 40), 15)
    expect(store.peers('m', 0).map(p => p.peerId).sort()).toEqual(['a', 'c', 'd'])
    expect(store.lastSeq('m', 'b', 40)).toBeDefined() // swept, but its seq is remembered
    // a, c and d are live at 15: no room
    expect(() => { store.putPeer('m', entry('e', 50), 15) }).toThrow(TrackerFullError)
    expect(store.size).toBe(3)
  })
})
