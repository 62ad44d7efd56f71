// Issue 10 item 4, tracker side: free identities must not let one host lock a swarm or the
// tracker, nor crowd honest peers out of the answers. The attacker announces from 127.0.0.2, the
// honest peers from 127.0.0.1 (two hosts as far as the tracker can tell).
import { beforeAll, describe, expect, it } from 'vitest'
import type { TrackerServerInit } from '../../tracker/server.js'
import { announceQuery, getJsonFrom, makeCid, makePeer, recordParam, useTrackers } from '../tracker/helpers.js'
import type { TestPeer } from '../tracker/helpers.js'

const ATTACKER = '127.0.0.2'
const HONEST = '127.0.0.1'

const start = useTrackers()

async function startTracker (init: TrackerServerInit = {}): Promise<string> {
  // a fixed random(), so a run that fails fails the same way every time
  let x = 12345
  const random = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 }
  return (await start({ random, ...init })).base
}

interface Announce { manifest: string, peer: TestPeer, from: string, addr?: string, left?: number, numwant?: number }

async function announce (base: string, a: Announce): Promise<Awaited<ReturnType<typeof getJsonFrom>>> {
  // each host announces an address of its own (the attacker's is a tarpit nobody answers on)
  const addr = a.addr ?? `/ip4/${a.from}/tcp/${4000 + (parseInt(a.peer.id.slice(-4), 36) % 20_000)}`
  const record = await recordParam(a.peer.key, [addr])
  const query = announceQuery({ manifest: a.manifest, peer: a.peer.id, record, uploaded: 0, downloaded: 0, left: a.left ?? 1, numwant: a.numwant })
  return await getJsonFrom(`${base}/announce?${query}`, a.from)
}

/** `n` fake identities announced from the attacker's address, a few at a time. */
async function flood (base: string, n: number, manifest: (i: number) => string): Promise<Map<number, number>> {
  const fakes = await Promise.all(Array.from({ length: n }, makePeer))
  const statuses = new Map<number, number>()
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(fakes.slice(i, i + 20).map(async (peer, j) => await announce(base, { manifest: manifest(i + j), peer, from: ATTACKER })))
    for (const r of batch) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
  }
  return statuses
}

let manifests: string[]
let honest: TestPeer[]

beforeAll(async () => {
  manifests = await Promise.all(['pollute-a', 'pollute-b'].map(makeCid))
  honest = await Promise.all(Array.from({ length: 3 }, makePeer))
})

describe('tracker pollution (issue 10 item 4)', () => {
  it('a swarm filled with fakes from one host still admits an honest newcomer', async () => {
    const base = await startTracker({ maxPeersPerManifest: 200 })
    await flood(base, 200, () => manifests[0])
    const r = await announce(base, { manifest: manifests[0], peer: honest[0], from: HONEST })
    expect(r.body.error).toBeUndefined()
    expect(r.status).toBe(200)
    // and keeps admitting newcomers: the fakes yield, not the honest peers
    const r2 = await announce(base, { manifest: manifests[0], peer: honest[1], from: HONEST })
    expect(r2.status).toBe(200)
    expect(r2.body.peers?.map(p => p.peerId)).toContain(honest[0].id)
  })

  it('fakes from one host do not crowd the honest seeder out of the answers', async () => {
    const base = await startTracker()
    await announce(base, { manifest: manifests[0], peer: honest[0], from: HONEST, left: 0 })
    await flood(base, 199, () => manifests[0])
    // a leecher asking for 10 peers, 10 times: the seeder must be in every answer
    let seen = 0
    for (let i = 0; i < 10; i++) {
      const r = await announce(base, { manifest: manifests[0], peer: honest[1], from: HONEST, numwant: 10 })
      expect(r.status).toBe(200)
      expect(r.body.peers).toHaveLength(10)
      if (r.body.peers?.some(p => p.peerId === honest[0].id) === true) seen++
    }
    expect(seen).toBe(10)
  })

  it('one identity cannot open swarm after swarm', async () => {
    const base = await startTracker({ maxSwarmsPerPeer: 5 })
    const attacker = await makePeer()
    const cids = await Promise.all(Array.from({ length: 8 }, async (_, i) => await makeCid(`one-key-${i}`)))
    const statuses: number[] = []
    for (const manifest of cids) statuses.push((await announce(base, { manifest, peer: attacker, from: ATTACKER })).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
    // re-announcing in a swarm it is already in still works
    expect((await announce(base, { manifest: cids[0], peer: attacker, from: ATTACKER })).status).toBe(200)
  })

  it('many identities from one host cannot shut the tracker to new swarms', async () => {
    const base = await startTracker({ maxManifests: 300 })
    const cids = await Promise.all(Array.from({ length: 300 }, async (_, i) => await makeCid(`many-swarms-${i}`)))
    await flood(base, 300, i => cids[i])
    const r = await announce(base, { manifest: manifests[1], peer: honest[2], from: HONEST })
    expect(r.body.error).toBeUndefined()
    expect(r.status).toBe(200)
  })

  it('one host gets a quota of peer entries; other hosts keep announcing', async () => {
    const base = await startTracker({ maxPeersPerIp: 50 })
    const statuses = await flood(base, 60, () => manifests[0])
    expect(statuses.get(200)).toBe(50)
    expect(statuses.get(429)).toBe(10)
    const r = await announce(base, { manifest: manifests[0], peer: honest[0], from: HONEST })
    expect(r.status).toBe(200)
  })

  it('a tracker full of one host\'s peers admits a newcomer from another host', async () => {
    const base = await startTracker({ maxPeersTotal: 100 })
    await flood(base, 100, i => manifests[i % 2])
    const r = await announce(base, { manifest: manifests[0], peer: honest[0], from: HONEST })
    expect(r.body.error).toBeUndefined()
    expect(r.status).toBe(200)
  })
})
