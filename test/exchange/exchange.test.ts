/**
 * The manifest exchange between two real libp2p nodes on 127.0.0.1. Issue 10, item 10: a
 * manifest between 4 and 8 MiB was valid to make but could not be fetched (the stream's 4 MiB
 * read buffer was below the manifest cap); the caps must agree.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { fetchManifest, MANIFEST_PROTOCOL, ManifestTimeoutError, serveManifests } from '../../src/exchange/exchange.js'
import { encodeManifest, HASH_LENGTH, InvalidManifestError, manifestCid, MAX_MANIFEST_BYTES, MIN_PIECE_LENGTH, type Manifest } from '../../src/manifest/manifest.js'
import { createNode, type BitswarmNode } from '../../src/node.js'
import { LOOPBACK } from '../helpers/peers.js'

/** A manifest of `pieces` 16 KiB pieces (random hashes: nothing is ever hashed here). */
function bigManifest (pieces: number): Manifest {
  return { version: 1, name: 'big.bin', length: pieces * MIN_PIECE_LENGTH, pieceLength: MIN_PIECE_LENGTH, pieces: randomBytes(pieces * HASH_LENGTH) }
}

/** The most pieces whose manifest stays within the cap. */
const MOST_PIECES = Math.floor((MAX_MANIFEST_BYTES - 100) / HASH_LENGTH)

describe('manifest exchange', () => {
  const nodes: BitswarmNode[] = []

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async n => { await Promise.resolve(n.stop()).catch(() => {}) }))
  })

  async function pair (bytes: Uint8Array): Promise<{ client: BitswarmNode, server: BitswarmNode }> {
    const server = await createNode({ listen: LOOPBACK })
    const client = await createNode({ listen: LOOPBACK })
    nodes.push(server, client)
    await server.start()
    await client.start()
    const cid = await manifestCid(bytes)
    await serveManifests(server, (c) => c === cid.toString() ? bytes : undefined, () => {})
    await client.peerStore.merge(server.peerId, { multiaddrs: server.getMultiaddrs() })
    return { client, server }
  }

  it('fetches a manifest of more than 4 MiB (and as large as the cap allows)', async () => {
    const bytes = encodeManifest(bigManifest(MOST_PIECES))
    expect(bytes.byteLength).toBeGreaterThan(4 * 1024 * 1024)
    expect(bytes.byteLength).toBeLessThanOrEqual(MAX_MANIFEST_BYTES)
    const { client, server } = await pair(bytes)
    const cid = await manifestCid(bytes)
    const got = await fetchManifest(client, server.peerId, cid)
    expect(got.bytes.byteLength).toBe(bytes.byteLength)
    expect(got.manifest.pieces.byteLength).toBe(MOST_PIECES * HASH_LENGTH)
  }, 30_000)

  it('a peer that takes the request and never answers is dropped after answerTimeout', async () => {
    const bytes = encodeManifest(bigManifest(4))
    const { client, server } = await pair(bytes)
    await server.unhandle(MANIFEST_PROTOCOL)
    // reads the request, then says nothing (the stream stays open)
    await server.handle(MANIFEST_PROTOCOL, async (stream) => { for await (const _ of stream) { void _ } })
    const started = Date.now()
    await expect(fetchManifest(client, server.peerId, await manifestCid(bytes), { answerTimeout: 300 })).rejects.toBeInstanceOf(ManifestTimeoutError)
    expect(Date.now() - started).toBeLessThan(5_000)
  }, 30_000)

  it('a manifest over the cap is refused when it is made, with a clear error', () => {
    expect(() => encodeManifest(bigManifest(MOST_PIECES + 10))).toThrow(InvalidManifestError)
    expect(() => encodeManifest(bigManifest(MOST_PIECES + 10))).toThrow(/use a larger pieceLength/)
  })
})
