/**
 * Issue 10, item 6 (client side): peers steered at a third party. An attacker names many fresh
 * peer ids, all at a victim's address (a plain TCP listener that is no bitswarm peer), through
 * peer exchange and as if from a DHT answer; a leecher must open only a handful of connections
 * to that address, not one per id.
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
import { toWirePeers } from '../../src/discovery/pex.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import { createManifest, writeManifestFile } from '../../src/storage/manifest-file.js'
import { Peer, type PeerOptions } from '../../src/peer.js'
import { MessageType } from '../../src/wire/codec.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { Attacker } from '../helpers/attacker.js'
import { LOOPBACK } from '../helpers/peers.js'

/** A third party: counts the TCP connections it is sent, and hangs up on each at once. */
async function startVictim (): Promise<{ server: Server, addr: string, connections: () => number }> {
  let n = 0
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    n++
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
    s.destroy()
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', () => { resolve() }) })
  const port = (server.address() as AddressInfo).port
  return { server, addr: `/ip4/127.0.0.1/tcp/${port}`, connections: () => n }
}

async function freshIds (n: number): Promise<string[]> {
  return await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
}

describe('steering peers at a third party', () => {
  let dir: string
  let tracker: TrackerServer
  let victim: Awaited<ReturnType<typeof startVictim>>
  const peers: Peer[] = []
  const attackers: Attacker[] = []
  let base: PeerOptions

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-steer-'))
    tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 1, minInterval: 1, statsInterval: 0, log: () => {} })
    await tracker.start()
    victim = await startVictim()
    base = { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false, dht: false, pexInterval: 1000 }
  })

  afterEach(async () => {
    await Promise.all(attackers.splice(0).map(async a => { await a.stop() }))
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await tracker.stop()
    await new Promise<void>(resolve => { victim.server.close(() => { resolve() }) })
    await rm(dir, { recursive: true, force: true })
  })

  /** A leecher that has the manifest (so its swarm runs) and no seeder: it stays a leecher. */
  async function leecher (): Promise<Peer> {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(256 * 1024))
    const { bytes, cid } = await createManifest(file)
    const manifestPath = join(dir, 'data.bin.bitswarm')
    await writeManifestFile(manifestPath, bytes)
    const peer = await Peer.get(manifestPath, join(dir, 'out'), base)
    peers.push(peer)
    await peer.start()
    expect(peer.cid.toString()).toBe(cid.toString())
    return peer
  }

  it('peer exchange naming 100 fresh ids at one address: the victim gets a handful of connections', async () => {
    const peer = await leecher()
    // two attacker identities, so that the per-sender gossip rate limit does not hide anything
    for (let k = 0; k < 2; k++) {
      const attacker = await Attacker.create()
      attackers.push(attacker)
      const conn = await attacker.connect(peer.peerId, peer.multiaddrs)
      conn.handshake(peer.cid)
      conn.send({ type: MessageType.HaveNone })
      const fakes: PeerAddress[] = (await freshIds(50)).map(peerId => ({ peerId, multiaddrs: [victim.addr] }))
      conn.send({ type: MessageType.Peers, peers: toWirePeers(fakes) })
    }
    // before the fix, every id was dialled at once (100 connections within a second or two)
    await new Promise(resolve => setTimeout(resolve, 8_000))
    // the gossip was heard (the victim got a dial or two), and obeyed only that far
    expect(victim.connections()).toBeGreaterThanOrEqual(1)
    expect(victim.connections()).toBeLessThanOrEqual(4)
  }, 60_000)

  it('a DHT answer naming 100 fresh ids at one address: the victim gets a handful of connections', async () => {
    const peer = await leecher()
    const swarm = peer.swarm
    if (swarm == null) throw new Error('no swarm')
    // what DhtDiscovery.findProviders hands on from a remote answer goes to the swarm as 'dht'
    for (let round = 0; round < 4; round++) {
      swarm.addPeers((await freshIds(25)).map(peerId => ({ peerId, multiaddrs: [victim.addr] })), 'dht')
      await new Promise(resolve => setTimeout(resolve, 1_500))
    }
    await new Promise(resolve => setTimeout(resolve, 2_000))
    // the gossip was heard (the victim got a dial or two), and obeyed only that far
    expect(victim.connections()).toBeGreaterThanOrEqual(1)
    expect(victim.connections()).toBeLessThanOrEqual(4)
  }, 60_000)
})
