/**
 * A peer that withholds some blocks (every block of a piece but the last) while answering later
 * requests: the session hands the passed-over requests back at once, not after the 30 s timeout.
 */
import type { Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { PeerSession } from '../../src/session/session.js'
import { encodeHandshake, encodeHaveAll, encodePiece, encodeUnchoke, MessageType, WireDecoder, type BlockSpec, type WireMessage } from '../../src/wire/codec.js'
import { RecordingDelegate } from '../helpers/session.js'

const MANIFEST = Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...Array.from({ length: 32 }, (_, i) => i)])
const B = 16384
const geometry = { manifest: MANIFEST, pieceCount: 4, pieceSize: () => 2 * B }
const block = (piece: number, offset: number): BlockSpec => ({ piece, offset, length: B })

const streams: Stream[] = []
afterEach(() => { for (const s of streams.splice(0)) s.abort(new Error('test over')) })

async function setup (): Promise<{ session: PeerSession, delegate: RecordingDelegate, remote: Stream, received: WireMessage[], clock: { t: number } }> {
  const [a, b] = await streamPair()
  streams.push(a, b)
  const received: WireMessage[] = []
  const decoder = new WireDecoder()
  b.addEventListener('message', (evt) => { for (const m of decoder.decode(evt.data)) received.push(m) })
  const clock = { t: 1_000_000 }
  const delegate = new RecordingDelegate(new Set(), () => new Uint8Array(B))
  const session = new PeerSession({ stream: a, remotePeer: '12D3KooWTestPeerSkip', geometry, delegate, localHave: () => new Bitfield(4), log: () => {}, now: () => clock.t })
  session.start()
  b.send(encodeHandshake(MANIFEST))
  b.send(encodeHaveAll())
  b.send(encodeUnchoke())
  await vi.waitFor(() => { expect(session.peerChoking).toBe(false) }, { interval: 2, timeout: 3000 })
  return { session, delegate, remote: b, received, clock }
}

describe('PeerSession.expireSkipped', () => {
  it('returns (and cancels) requests the peer passed over while answering one sent later', async () => {
    const { session, delegate, remote, received, clock } = await setup()
    session.request([block(0, 0), block(0, B)])
    clock.t += 5000
    session.request([block(1, 0)])
    remote.send(encodePiece(1, 0, new Uint8Array(B)))
    await vi.waitFor(() => { expect(delegate.blocks).toHaveLength(1) }, { interval: 2, timeout: 3000 })
    expect(session.expireSkipped(2000)).toEqual([block(0, 0), block(0, B)])
    expect(session.outstanding.size).toBe(0)
    await vi.waitFor(() => { expect(received.filter(m => m.type === MessageType.Cancel)).toHaveLength(2) }, { interval: 2, timeout: 3000 })
    // a late block of a passed-over request is not a protocol violation
    remote.send(encodePiece(0, 0, new Uint8Array(B)))
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(session.closed).toBe(false)
  })

  it('a peer answering in order, or within the grace, passes nothing over', async () => {
    const { session, delegate, remote, clock } = await setup()
    session.request([block(0, 0)])
    clock.t += 1000
    session.request([block(0, B), block(1, 0)])
    remote.send(encodePiece(0, B, new Uint8Array(B))) // 1 s out of order: within a 2 s grace
    await vi.waitFor(() => { expect(delegate.blocks).toHaveLength(1) }, { interval: 2, timeout: 3000 })
    expect(session.expireSkipped(2000)).toEqual([])
    expect(session.outstanding.size).toBe(2)
  })
})
