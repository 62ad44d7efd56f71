// The tracker's HTTP edge: whose IP an announce counts as (socket, or a trusted proxy's
// X-Forwarded-For), and the per-IP connection cap.
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer, TrackerServerError } from '../../tracker/server.js'
import { announceQuery, getJson, getJsonFrom, makeCid, makePeer, recordParam, useTrackers } from './helpers.js'
import type { TestPeer } from './helpers.js'

const sockets: Socket[] = []

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
})

const startTracker = useTrackers()

let manifest: string
let peers: TestPeer[]

beforeAll(async () => {
  manifest = await makeCid('edge')
  peers = await Promise.all(Array.from({ length: 2 }, makePeer))
})

async function announcePath (i: number, addrs: string[]): Promise<string> {
  return `/announce?${announceQuery({ manifest, peer: peers[i].id, record: await recordParam(peers[i].key, addrs), uploaded: 0, downloaded: 0, left: 1 })}`
}

/** what peer 1 is told about peer 0 */
async function listedFor0 (base: string): Promise<string[] | undefined> {
  const r = await getJson(`${base}${await announcePath(1, [])}`)
  return r.body.peers?.find(p => p.peerId === peers[0].id)?.multiaddrs
}

describe('client IP', () => {
  it('by default X-Forwarded-For is the client\'s own words: ignored', async () => {
    const { base } = await startTracker()
    const r = await getJson(`${base}${await announcePath(0, ['/ip4/127.0.0.9/tcp/1', '/ip4/127.0.0.1/tcp/2'])}`, { headers: { 'x-forwarded-for': '127.0.0.9' } })
    expect(r.status).toBe(200)
    expect(await listedFor0(base)).toEqual(['/ip4/127.0.0.1/tcp/2'])
  })

  it('behind a trusted proxy the last X-Forwarded-For entry is the announcer', async () => {
    const { base } = await startTracker({ trustedProxies: ['127.0.0.1'] })
    // the client wrote 127.0.0.7 itself; the proxy appended what it saw, 127.0.0.9
    const r = await getJson(`${base}${await announcePath(0, ['/ip4/127.0.0.9/tcp/1', '/ip4/127.0.0.7/tcp/2'])}`, { headers: { 'x-forwarded-for': '127.0.0.7, 127.0.0.9' } })
    expect(r.status).toBe(200)
    expect(await listedFor0(base)).toEqual(['/ip4/127.0.0.9/tcp/1'])
    const bad = await getJson(`${base}${await announcePath(0, [])}`, { headers: { 'x-forwarded-for': 'nonsense' } })
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatch(/X-Forwarded-For/)
  })

  it('bad edge options are refused', () => {
    expect(() => createTrackerServer({ trustedProxies: ['proxy.example'] })).toThrow(TrackerServerError)
    expect(() => createTrackerServer({ maxConnectionsPerIp: 0 })).toThrow(TrackerServerError)
    expect(() => createTrackerServer({ headersTimeout: 5000, requestTimeout: 1000 })).toThrow(/at least headersTimeout/)
  })
})

describe('connection cap', () => {
  it('one IP gets maxConnectionsPerIp sockets; the next is closed at once, others still served', async () => {
    const logs: string[] = []
    const { tracker, base } = await startTracker({ maxConnectionsPerIp: 3, log: (l) => { logs.push(l) } })
    const open = async (): Promise<Socket> => await new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: tracker.port, localAddress: '127.0.0.2' }, () => { resolve(s) })
      s.on('error', reject)
      sockets.push(s)
    })
    const held = await Promise.all([open(), open(), open()])
    const extra = await open()
    await new Promise<void>(resolve => { extra.once('close', () => { resolve() }) })
    expect(held.every(s => !s.destroyed)).toBe(true)
    expect((await getJsonFrom(`${base}/scrape?manifest=${manifest}`, '127.0.0.1')).status).toBe(200)
    // one closed: a slot is free again
    held[0].destroy()
    await expect.poll(async () => (await getJsonFrom(`${base}/scrape?manifest=${manifest}`, '127.0.0.2').catch(() => ({ status: 0 }))).status).toBe(200)
    await tracker.logStats()
    expect(logs.join('\n')).toMatch(/closed \d+ connections? over the per-IP cap \(max 3\)/)
  })

  it('past maxConnections new sockets are closed (not left to exhaust descriptors), and it is logged', async () => {
    const logs: string[] = []
    const { tracker } = await startTracker({ maxConnections: 2, log: (l) => { logs.push(l) } })
    const open = async (local: string): Promise<Socket> => await new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: tracker.port, localAddress: local }, () => { resolve(s) })
      s.on('error', reject)
      sockets.push(s)
    })
    await open('127.0.0.2')
    await open('127.0.0.3')
    const extra = await open('127.0.0.4')
    await new Promise<void>(resolve => { extra.once('close', () => { resolve() }) })
    await tracker.logStats()
    expect(logs.join('\n')).toMatch(/closed 1 connections over maxConnections \(2\)/)
  })
})
