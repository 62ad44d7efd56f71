// Signed announces: only the peer itself can list its id and addresses, and only once per record.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import fc from 'fast-check'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { signPeerRecord } from '../../src/discovery/tracker-client.js'
import { verifyEnvelope } from '../../tracker/record.js'
import type { TrackerServer, TrackerServerInit } from '../../tracker/server.js'
import { announceQuery, b64url, getJson, makeCid, makePeer, nextSeq, rawPeerRecord, recordParam, sealPayload, useTrackers } from './helpers.js'
import type { AnnounceQuery, TestPeer } from './helpers.js'

const start = useTrackers()
/** the trackers started by the current test, in order */
let started: TrackerServer[] = []
beforeEach(() => { started = [] })

async function startTracker (init: TrackerServerInit = {}): Promise<string> {
  const { tracker, base } = await start(init)
  started.push(tracker)
  return `${base}/announce`
}

let manifest: string
let alice: TestPeer
let bob: TestPeer
let carol: TestPeer
const ADDR = '/ip4/127.0.0.1/tcp/4001'

beforeAll(async () => {
  manifest = await makeCid('signed')
  ;[alice, bob, carol] = await Promise.all([makePeer(), makePeer(), makePeer()])
})

function query (peer: string, record: string | undefined, over: AnnounceQuery = {}): string {
  return announceQuery({ manifest, peer, record, uploaded: 0, downloaded: 0, left: 1, ...over })
}

async function announceWith (url: string, peer: string, record: string | undefined, over: AnnounceQuery = {}): Promise<Awaited<ReturnType<typeof getJson>>> {
  return await getJson(`${url}?${query(peer, record, over)}`)
}

/** bob's view of the swarm: who is listed, with which addresses */
async function listed (url: string): Promise<Record<string, string[]>> {
  const r = await announceWith(url, bob.id, await recordParam(bob.key, []))
  expect(r.status).toBe(200)
  return Object.fromEntries((r.body.peers ?? []).map(p => [p.peerId, p.multiaddrs]))
}

async function expect400 (url: string, peer: string, record: string | undefined, reason: RegExp, over: AnnounceQuery = {}): Promise<void> {
  const r = await announceWith(url, peer, record, over)
  expect(r.status).toBe(400)
  expect(r.contentType).toMatch(/^application\/json/)
  expect(r.body.error).toMatch(reason)
}

describe('verifyEnvelope (Ed25519 in the thread pool)', () => {
  it('agrees with libp2p\'s validate on valid, tampered and mis-signed envelopes', async () => {
    const libp2p = async (e: RecordEnvelope): Promise<boolean> => await e.validate(PeerRecord.DOMAIN).catch(() => false)
    const ours = async (e: RecordEnvelope): Promise<boolean> => await verifyEnvelope(e).catch(() => false)
    await fc.assert(fc.asyncProperty(
      fc.uint8Array({ maxLength: 200 }),
      fc.constantFrom('none', 'payload', 'signature', 'short signature', 'payload type', 'other key', 'other domain'),
      fc.nat(),
      async (payload, how, at) => {
        const sealed = RecordEnvelope.createFromProtobuf(await sealPayload(alice.key, payload))
        let { publicKey, payloadType, signature } = sealed
        const body = Uint8Array.from(sealed.payload)
        if (how === 'payload' && body.length > 0) body[at % body.length] ^= 1 << (at % 8)
        if (how === 'signature') signature = Uint8Array.from(signature).map((b, i) => i === at % 64 ? b ^ 1 : b)
        if (how === 'short signature') signature = signature.subarray(0, at % 64)
        if (how === 'payload type') payloadType = new Uint8Array([0x03, 0x01])
        if (how === 'other key') publicKey = bob.key.publicKey
        if (how === 'other domain') {
          signature = (await RecordEnvelope.seal({ domain: 'elsewhere', codec: PeerRecord.CODEC, marshal: () => body, equals: () => false }, alice.key)).signature
        }
        const envelope = new RecordEnvelope({ publicKey, payloadType, payload: body, signature })
        const expected = await libp2p(envelope)
        expect(await ours(envelope)).toBe(expected)
        if (how === 'none') expect(expected).toBe(true)
      }
    ), { numRuns: 150 })
  })
})

describe('signed announces', () => {
  it('a valid record is accepted and its addresses are handed out (/p2p suffix stripped, duplicates merged)', async () => {
    const url = await startTracker()
    const r = await announceWith(url, alice.id, await recordParam(alice.key, [ADDR, `${ADDR}/p2p/${alice.id}`, '/ip6/::1/tcp/4001']))
    expect(r.status).toBe(200)
    // the IPv6 address is not on the IP the announce came from (127.0.0.1): not listed
    expect(await listed(url)).toEqual({ [alice.id]: [ADDR] })
  })

  describe('forged records are refused', () => {
    it('signed by another key for this peer id', async () => {
      const url = await startTracker()
      // mallory (bob) signs a record that claims alice's id and points at his own address
      const lie = new PeerRecord({ peerId: peerIdFromString(alice.id), multiaddrs: [multiaddr('/ip4/6.6.6.6/tcp/666')], seqNumber: nextSeq() })
      const sealed = await RecordEnvelope.seal(lie, bob.key)
      await expect400(url, alice.id, b64url(sealed.marshal()), /not signed by the peer's key/)
      // … and with alice's public key pasted into the envelope, the signature no longer matches
      const pasted = new RecordEnvelope({ publicKey: alice.key.publicKey, payloadType: sealed.payloadType, payload: sealed.payload, signature: sealed.signature })
      await expect400(url, alice.id, b64url(pasted.marshal()), /signature is invalid/)
      expect(await listed(url)).toEqual({})
    })

    it('record peer id differs from the peer parameter', async () => {
      const url = await startTracker()
      // alice signs a record naming carol
      const other = new PeerRecord({ peerId: peerIdFromString(carol.id), multiaddrs: [multiaddr(ADDR)], seqNumber: nextSeq() })
      const sealed = b64url((await RecordEnvelope.seal(other, alice.key)).marshal())
      await expect400(url, alice.id, sealed, /record peer id differs from peer/)
      await expect400(url, carol.id, sealed, /not signed by the peer's key/)
    })

    it('tampered bytes', async () => {
      const url = await startTracker()
      const bytes = await signPeerRecord(alice.key, [ADDR], nextSeq())
      // change the signed address 127.0.0.1 into 127.0.0.2
      const at = Buffer.from(bytes).indexOf(Buffer.from([4, 127, 0, 0, 1]))
      expect(at).toBeGreaterThan(0)
      const tampered = Uint8Array.from(bytes)
      tampered[at + 4] = 2
      await expect400(url, alice.id, b64url(tampered), /signature is invalid/)
      // a flipped signature bit, and a cut-off envelope
      const flipped = Uint8Array.from(bytes)
      flipped[flipped.length - 1] ^= 1
      await expect400(url, alice.id, b64url(flipped), /signature is invalid/)
      await expect400(url, alice.id, b64url(bytes.subarray(0, bytes.length - 10)), /not a signed envelope|signature is invalid/)
    })

    it('garbage, not base64url, empty and oversize', async () => {
      const url = await startTracker()
      await expect400(url, alice.id, 'not base64!', /not base64url/)
      await expect400(url, alice.id, 'abc+/', /not base64url/)
      await expect400(url, alice.id, 'A', /not base64url/)
      await expect400(url, alice.id, '', /missing record/)
      await expect400(url, alice.id, b64url(new Uint8Array(100).fill(7)), /not a signed envelope/)
      await expect400(url, alice.id, 'A'.repeat(6000), /record too large/)
      // validly signed, but past 4 KiB
      await expect400(url, alice.id, b64url(await sealPayload(alice.key, new Uint8Array(4200))), /record too large/)
    })

    it('a signed envelope that is not a peer record, or signed for another domain', async () => {
      const url = await startTracker()
      const payload = new PeerRecord({ peerId: peerIdFromString(alice.id), multiaddrs: [multiaddr(ADDR)], seqNumber: nextSeq() }).marshal()
      await expect400(url, alice.id, b64url(await sealPayload(alice.key, payload, new Uint8Array([0x03, 0x02]))), /not a peer record/)
      const otherDomain = await RecordEnvelope.seal({ domain: 'some-other-domain', codec: PeerRecord.CODEC, marshal: () => payload, equals: () => false }, alice.key)
      await expect400(url, alice.id, b64url(otherDomain.marshal()), /signature is invalid/)
      // a validly signed payload that is not a PeerRecord at all
      await expect400(url, alice.id, b64url(await sealPayload(alice.key, new Uint8Array([0xff, 0xff, 0xff]))), /not a valid peer record/)
    })

    it('bad multiaddrs inside a validly signed record', async () => {
      const url = await startTracker()
      const id = peerIdFromString(alice.id).toMultihash().bytes
      const sign = async (addrs: Uint8Array[]): Promise<string> => b64url(await sealPayload(alice.key, rawPeerRecord(id, nextSeq(), addrs)))
      const ok = multiaddr(ADDR).bytes
      await expect400(url, alice.id, await sign([ok, new Uint8Array([0xee, 0xee, 0x03, 1, 2, 3])]), /not a valid peer record/) // unknown protocol
      await expect400(url, alice.id, await sign([new Uint8Array([4, 10, 0])]), /not a valid peer record/) // truncated ip4
      await expect400(url, alice.id, await sign([new Uint8Array([])]), /record addr is not a multiaddr/)
      // a dns name holding '/' would read differently as text
      const dns = new TextEncoder().encode('a/tcp/1')
      await expect400(url, alice.id, await sign([new Uint8Array([0x36, dns.length, ...dns])]), /record addr is not a multiaddr/)
      await expect400(url, alice.id, await recordParam(alice.key, [`/p2p/${alice.id}`]), /record addr is not a multiaddr/)
      await expect400(url, alice.id, await recordParam(alice.key, [`${ADDR}/p2p/${bob.id}`]), /\/p2p id differs from peer/)
      await expect400(url, alice.id, await recordParam(alice.key, Array.from({ length: 17 }, (_, i) => `/ip4/10.0.1.${i}/tcp/1`)), /too many addrs/)
      await expect400(url, alice.id, await recordParam(alice.key, [`/dns4/${'a'.repeat(250)}/tcp/1`]), /addr too long/)
      expect(await listed(url)).toEqual({})
    })

    it('an RSA peer (id = hash of its key) is accepted with its own key, refused with another', async () => {
      const url = await startTracker()
      const key = await generateKeyPair('RSA', 1024)
      const id = peerIdFromPrivateKey(key).toString()
      expect((await announceWith(url, id, await recordParam(key, [ADDR]))).status).toBe(200)
      const lie = new PeerRecord({ peerId: peerIdFromString(id), multiaddrs: [multiaddr('/ip4/6.6.6.6/tcp/666')], seqNumber: nextSeq() })
      await expect400(url, id, b64url((await RecordEnvelope.seal(lie, alice.key)).marshal()), /not signed by the peer's key/)
      expect(await listed(url)).toEqual({ [id]: [ADDR] })
    })

    it('secp256k1 peer ids are refused before any verification (too costly)', async () => {
      const url = await startTracker()
      const key = await generateKeyPair('secp256k1')
      const id = peerIdFromPrivateKey(key).toString()
      await expect400(url, id, await recordParam(key, [ADDR]), /secp256k1/)
    })
  })

  describe('replay protection', () => {
    it('the same record twice, or an older seq, is refused', async () => {
      const url = await startTracker()
      const s = nextSeq() + 1000n
      const record = await recordParam(alice.key, [ADDR], s)
      expect((await announceWith(url, alice.id, record)).status).toBe(200)
      await expect400(url, alice.id, record, /not newer/)
      await expect400(url, alice.id, await recordParam(alice.key, ['/ip4/6.6.6.6/tcp/1'], s - 1n), /not newer/)
      expect((await announceWith(url, alice.id, await recordParam(alice.key, [ADDR], s + 1n))).status).toBe(200)
      expect(await listed(url)).toEqual({ [alice.id]: [ADDR] })
    })

    it('the seq is per swarm: a record accepted in one manifest does not block another', async () => {
      const url = await startTracker()
      const record = await recordParam(alice.key, [ADDR])
      expect((await announceWith(url, alice.id, record)).status).toBe(200)
      expect((await announceWith(url, alice.id, record, { manifest: await makeCid('other') })).status).toBe(200)
    })

    it('stopped needs a fresh record too: a replayed one cannot remove the peer', async () => {
      const url = await startTracker()
      const record = await recordParam(alice.key, [ADDR])
      expect((await announceWith(url, alice.id, record)).status).toBe(200)
      await expect400(url, alice.id, record, /not newer/, { event: 'stopped' })
      await expect400(url, alice.id, undefined, /missing record/, { event: 'stopped' })
      expect(Object.keys(await listed(url))).toEqual([alice.id])
      expect((await announceWith(url, alice.id, await recordParam(alice.key, [ADDR]), { event: 'stopped' })).status).toBe(200)
      expect(await listed(url)).toEqual({})
    })

    it('after stopped (or expiry), a captured record cannot re-list the peer', async () => {
      let clock = 1_000_000
      const url = await startTracker({ now: () => clock, interval: 30 })
      const captured = await recordParam(alice.key, [ADDR])
      expect((await announceWith(url, alice.id, captured)).status).toBe(200)
      expect((await announceWith(url, alice.id, await recordParam(alice.key, [ADDR]), { event: 'stopped' })).status).toBe(200)
      await expect400(url, alice.id, captured, /not newer/)
      expect(await listed(url)).toEqual({})

      // carol goes silent and expires (and is swept); her old record still does not bring her back
      const carols = await recordParam(carol.key, [ADDR])
      expect((await announceWith(url, carol.id, carols)).status).toBe(200)
      clock += 61_000
      started[0].sweep()
      await expect400(url, carol.id, carols, /not newer/)
      expect(await listed(url)).toEqual({})
    })

    it('a stopped that overtook its started still wins', async () => {
      const url = await startTracker()
      const started = await recordParam(alice.key, [ADDR])
      expect((await announceWith(url, alice.id, await recordParam(alice.key, []), { event: 'stopped' })).status).toBe(200)
      await expect400(url, alice.id, started, /not newer/)
    })
  })
})
