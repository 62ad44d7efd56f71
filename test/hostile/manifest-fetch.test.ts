/**
 * Issue 10, item 4 (client side): tracker pollution. Identities are free: an attacker announces
 * 200 fake peers whose address is a tarpit (accepts TCP and never says a word). A newcomer that
 * knows only the CID must still get the manifest from the one honest seeder quickly, not after
 * waiting out each dead peer in turn (it took 139 s for a 1 MiB file).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { announce, nextRecordSeq, signPeerRecord } from '../../src/discovery/tracker-client.js'
import { Peer, type PeerOptions } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'

/** Accepts connections and never answers (nor hangs up): each dial waits for its timeout. */
async function startTarpit (): Promise<{ server: Server, sockets: Set<Socket>, port: number }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', () => { resolve() }) })
  return { server, sockets, port: (server.address() as AddressInfo).port }
}

describe('tracker pollution', () => {
  let dir: string
  let tracker: TrackerServer
  let tarpit: Awaited<ReturnType<typeof startTarpit>>
  const extra: Array<Awaited<ReturnType<typeof startTarpit>>> = []
  const peers: Peer[] = []
  let base: PeerOptions

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-pollution-'))
    // fakes are announced once and must outlive the test; honest peers re-announce every 2 s
    tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 2, minInterval: 1, peerTtl: 600, statsInterval: 0, log: () => {} })
    await tracker.start()
    tarpit = await startTarpit()
    base = { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false, dht: false }
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await tracker.stop()
    for (const t of [tarpit, ...extra.splice(0)]) {
      for (const s of t.sockets) s.destroy()
      await new Promise<void>(resolve => { t.server.close(() => { resolve() }) })
    }
    await rm(dir, { recursive: true, force: true })
  })

  /**
   * `n` fresh identities announce the tarpit as their address (signed, as the tracker wants);
   * returns how many the tracker took (one with per-IP quotas may refuse some).
   */
  async function pollute (cid: string, n: number, addrs: (i: number) => string[]): Promise<number> {
    let taken = 0
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, n - i) }, async (_, j) => {
        const key = await generateKeyPair('Ed25519')
        const peerId = peerIdFromPrivateKey(key).toString()
        const record = await signPeerRecord(key, addrs(i + j), nextRecordSeq())
        // a seeder's numbers, so that a tracker that prefers useful peers still lists them
        await announce(tracker.announceUrl, { manifest: cid, peerId, record, event: 'started', uploaded: 0, downloaded: 0, left: 0 }).then(() => { taken++ }, () => {})
      }))
    }
    return taken
  }

  async function run (addrs: (i: number) => string[]): Promise<number> {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(1024 * 1024))
    const seeder = await Peer.seed(file, base)
    peers.push(seeder)
    await seeder.start()
    expect(await pollute(seeder.cid.toString(), 200, addrs)).toBeGreaterThan(0)
    const started = Date.now()
    const leecher = await Peer.get(seeder.cid.toString(), join(dir, 'out'), base)
    peers.push(leecher)
    const done = completed(leecher)
    await leecher.start()
    const d = await done
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    return Date.now() - started
  }

  it('200 fake peers at one tarpit address: a 1 MiB get still finishes quickly', async () => {
    const ms = await run(() => [`/ip4/127.0.0.1/tcp/${tarpit.port}`])
    // before the fix: no manifest within 60 s (the issue measured 139 s)
    expect(ms).toBeLessThan(20_000)
  }, 60_000)

  it('200 fake peers at 200 tarpit ports: the race widens, and the get finishes in well under a minute', async () => {
    // the per-address cap cannot help here: each fake has an address of its own, and on loopback
    // they share the honest seeder's host; what helps is asking more peers at once as tarpits
    // hold their places (8, then up to 32 at once: ~32 s to try all 200, ~16 s on average)
    const pits = await Promise.all(Array.from({ length: 199 }, async () => await startTarpit()))
    extra.push(...pits)
    const ports = [tarpit.port, ...pits.map(p => p.port)]
    const ms = await run((i) => [`/ip4/127.0.0.1/tcp/${ports[i]}`])
    // before the fix: ~200 x 6 s one after another
    expect(ms).toBeLessThan(50_000)
  }, 90_000)
})
