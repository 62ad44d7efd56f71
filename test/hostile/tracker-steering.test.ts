// Issue 10 item 6, tracker side: a signed record proves who announced, not that the addresses are
// theirs. Fresh keys on 127.0.0.2 announce a victim's port on 127.0.0.1; the tracker must not hand
// that address to the swarm, while honest peers (announcing their own address) stay listed.
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { LOOPBACK } from '../helpers/peers.js'
import { createTrackerServer } from '../../tracker/server.js'
import type { TrackerServer } from '../../tracker/server.js'
import { announceQuery, getJsonFrom, makeCid, makePeer, recordParam } from '../tracker/helpers.js'
import type { TestPeer } from '../tracker/helpers.js'

const ATTACKER = '127.0.0.2'
const HONEST = '127.0.0.1'

const servers: TrackerServer[] = []
const victims: Server[] = []
const peers: Peer[] = []
const dirs: string[] = []

afterEach(async () => {
  await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
  await Promise.all(servers.splice(0).map(async s => { await s.stop() }))
  await Promise.all(victims.splice(0).map(async v => await new Promise(resolve => v.close(resolve))))
})

async function startTracker (): Promise<string> {
  // a short interval: the leecher asks again every second
  const tracker = createTrackerServer({ port: 0, log: () => {}, interval: 1, minInterval: 1, statsInterval: 0 })
  servers.push(tracker)
  await tracker.start()
  return `http://127.0.0.1:${tracker.port}`
}

/** A third party's service on 127.0.0.1 that counts who connects. */
async function startVictim (): Promise<{ port: number, connections: () => number }> {
  let n = 0
  const server = createServer(s => { n++; s.destroy() })
  victims.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address == null || typeof address === 'string') throw new Error('no port')
  return { port: address.port, connections: () => n }
}

async function announce (base: string, manifest: string, peer: TestPeer, from: string, addrs: string[]): Promise<Awaited<ReturnType<typeof getJsonFrom>>> {
  const record = await recordParam(peer.key, addrs)
  return await getJsonFrom(`${base}/announce?${announceQuery({ manifest, peer: peer.id, record, uploaded: 0, downloaded: 0, left: 1 })}`, from)
}

let manifest: string
let honest: TestPeer[]

beforeAll(async () => {
  manifest = await makeCid('steering')
  honest = await Promise.all(Array.from({ length: 2 }, makePeer))
})

describe('peers steered at a third party (issue 10 item 6)', () => {
  it('20 fresh keys from another host cannot list a victim\'s address', async () => {
    const base = await startTracker()
    const victim = await startVictim()
    const target = `/ip4/127.0.0.1/tcp/${victim.port}`
    const fakes = await Promise.all(Array.from({ length: 20 }, makePeer))
    for (const fake of fakes) expect((await announce(base, manifest, fake, ATTACKER, [target])).status).toBe(200)
    // an honest seeder on 127.0.0.1 announcing its own port is listed as before
    await announce(base, manifest, honest[0], HONEST, ['/ip4/127.0.0.1/tcp/4001'])

    const r = await announce(base, manifest, honest[1], HONEST, ['/ip4/127.0.0.1/tcp/4002'])
    expect(r.status).toBe(200)
    const listed = (r.body.peers ?? []).flatMap(p => p.multiaddrs)
    expect(listed).not.toContain(target)
    expect(r.body.peers).toEqual([{ peerId: honest[0].id, multiaddrs: ['/ip4/127.0.0.1/tcp/4001'] }])
    // the fakes still count (they did announce), they just cannot be dialled through us
    expect((r.body.complete ?? 0) + (r.body.incomplete ?? 0)).toBe(22)
    expect(victim.connections()).toBe(0)
  })

  it('a real leecher told about 20 fake peers at a victim\'s port never connects to it', async () => {
    const base = await startTracker()
    const victim = await startVictim()
    const target = `/ip4/127.0.0.1/tcp/${victim.port}`
    const fakes = await Promise.all(Array.from({ length: 20 }, makePeer))
    for (const fake of fakes) expect((await announce(base, manifest, fake, ATTACKER, [target])).status).toBe(200)
    const dir = await mkdtemp(join(tmpdir(), 'bitswarm-steering-'))
    dirs.push(dir)
    // nobody has the manifest: the leecher keeps asking the tracker and dialling whom it is told of
    const leecher = await Peer.get(manifest, join(dir, 'out'), { listen: LOOPBACK, trackers: [`${base}/announce`], stateDir: false, dht: false, trackerMinBackoff: 200 })
    peers.push(leecher)
    await leecher.start()
    // the fakes re-announce now and then, as an attacker would
    const keepUp = setInterval(() => { for (const fake of fakes) void announce(base, manifest, fake, ATTACKER, [target]).catch(() => {}) }, 2000)
    try {
      await new Promise(resolve => setTimeout(resolve, 8000))
    } finally {
      clearInterval(keepUp)
    }
    expect(victim.connections()).toBe(0)
  }, 30_000)

  it('an unspecified address (0.0.0.0) is listed as the announcer\'s own address', async () => {
    const base = await startTracker()
    await announce(base, manifest, honest[0], ATTACKER, ['/ip4/0.0.0.0/tcp/4001', '/ip4/127.0.0.1/tcp/4001'])
    const r = await announce(base, manifest, honest[1], HONEST, ['/ip4/127.0.0.1/tcp/4002'])
    expect(r.body.peers).toEqual([{ peerId: honest[0].id, multiaddrs: ['/ip4/127.0.0.2/tcp/4001'] }])
  })
})
