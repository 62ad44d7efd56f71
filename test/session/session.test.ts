import type { Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { HAVE_DELAY_MS, MAX_QUEUED_REQUESTS, PeerSession, type SessionGeometry } from '../../src/session/session.js'
import {
  encodeBitfield, encodeCancel, encodeChoke, encodeHandshake, encodeHave, encodeHaveAll, encodeHaveNone,
  encodeInterested, encodeKeepAlive, encodePiece, encodeReject, encodeRequest, encodeUnchoke, MAX_BLOCK_LENGTH, MessageType,
  WireDecoder, type BlockSpec, type WireMessage
} from '../../src/wire/codec.js'
import { RecordingDelegate } from '../helpers/session.js'

/** vi.waitFor, polling often: the in-memory streams answer within a few ms */
async function until<T> (check: () => T): Promise<T> {
  return await vi.waitFor(check, { interval: 2, timeout: 3_000 })
}

// --- fixtures ---------------------------------------------------------------------------------

const PIECES = 10
const PIECE_SIZE = 32 * 1024
/** the last piece is short, so that "past the end of the piece" differs from piece to piece */
const LAST_PIECE_SIZE = 10_000
const MANIFEST = Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...Array.from({ length: 32 }, (_, i) => (i * 37) & 0xff)])
const OTHER_MANIFEST = MANIFEST.map((b, i) => i === MANIFEST.length - 1 ? b ^ 1 : b)

const geometry: SessionGeometry = {
  manifest: MANIFEST,
  pieceCount: PIECES,
  pieceSize: (piece) => piece === PIECES - 1 ? LAST_PIECE_SIZE : PIECE_SIZE
}

/** the content of any block: deterministic, and different for every (piece, offset) */
function blockBytes (piece: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (piece * 131 + (offset + i) * 7 + ((offset + i) >> 8)) & 0xff
  return out
}

/** the block size these tests request: two blocks to a piece */
const B = 16384
const block = (piece: number, offset: number, length = B): BlockSpec => ({ piece, offset, length })

function bitfieldOf (pieces: number[]): Bitfield {
  const bf = new Bitfield(PIECES)
  for (const p of pieces) bf.set(p)
  return bf
}

class FakeDelegate extends RecordingDelegate {
  constructor (pieces: Set<number>) { super(pieces, blockBytes) }
}

interface Side {
  session: PeerSession
  delegate: FakeDelegate
  logs: string[]
  stream: Stream
}

const streams: Stream[] = []

afterEach(() => {
  for (const s of streams.splice(0)) s.abort(new Error('test over'))
})

async function pair (): Promise<[Stream, Stream]> {
  const [a, b] = await streamPair()
  streams.push(a, b)
  return [a, b]
}

function startSession (stream: Stream, name: string, have: number[] | 'all' = []): Side {
  const pieces = new Set(have === 'all' ? Array.from({ length: PIECES }, (_, i) => i) : have)
  const delegate = new FakeDelegate(pieces)
  const logs: string[] = []
  const session = new PeerSession({
    stream,
    remotePeer: `12D3KooWTestPeer${name}`,
    geometry,
    delegate,
    localHave: () => bitfieldOf([...pieces]),
    log: (msg) => { logs.push(msg) }
  })
  session.start()
  return { session, delegate, logs, stream }
}

/** Two PeerSessions talking to each other; resolves once both know the other's have-state. */
async function twoSessions (aHas: number[] | 'all', bHas: number[] | 'all'): Promise<[Side, Side]> {
  const [sa, sb] = await pair()
  const a = startSession(sa, 'Alice', aHas)
  const b = startSession(sb, 'Bob', bHas)
  await until(() => {
    expect(a.delegate.haveStates).toBe(1)
    expect(b.delegate.haveStates).toBe(1)
  })
  return [a, b]
}

/** The far end of a session's stream, driven by hand: writes raw frames, decodes what it gets. */
class RawPeer {
  readonly received: WireMessage[] = []
  private readonly decoder = new WireDecoder()

  constructor (readonly stream: Stream) {
    stream.addEventListener('message', (evt) => {
      for (const msg of this.decoder.decode(evt.data)) this.received.push(msg)
    })
  }

  send (...frames: Array<Uint8Array | Uint8ArrayList>): void {
    for (const f of frames) this.stream.send(f)
  }

  /** our handshake and have-state, as a well-behaved peer starts */
  hello (haveState: Uint8Array = encodeHaveNone()): void {
    this.send(encodeHandshake(MANIFEST), haveState)
  }

  of<T extends MessageType>(type: T): Array<Extract<WireMessage, { type: T }>> {
    return this.received.filter((m): m is Extract<WireMessage, { type: T }> => m.type === type)
  }
}

async function sessionWithRawPeer (have: number[] | 'all' = []): Promise<{ side: Side, raw: RawPeer }> {
  const [sa, sb] = await pair()
  const raw = new RawPeer(sb)
  const side = startSession(sa, 'UnderTest', have)
  return { side, raw }
}

/** Waits for the session to close for a protocol reason; checks it was logged and the stream reset. */
async function expectClosedFor (side: Side, raw: RawPeer, pattern: RegExp): Promise<string> {
  await until(() => { expect(side.delegate.closes).toHaveLength(1) })
  const reason = side.delegate.closes[0]
  expect(typeof reason).toBe('string')
  expect(reason).toMatch(pattern)
  expect(side.session.closed).toBe(true)
  expect(side.session.closeReason).toBe(reason)
  expect(side.logs).toHaveLength(1)
  expect(side.logs[0]).toMatch(/^closing session with …/)
  expect(side.logs[0]).toContain(reason as string)
  // the far end sees its stream reset, not a graceful end
  await until(() => { expect(raw.stream.status).not.toBe('open') })
  return reason as string
}

// --- tests ------------------------------------------------------------------------------------

describe('PeerSession: handshake and have-state', () => {
  it('starts choked and not interested, both ways (BEP 3)', async () => {
    const [a, b] = await twoSessions([], [])
    for (const s of [a.session, b.session]) {
      expect(s.amChoking).toBe(true)
      expect(s.amInterested).toBe(false)
      expect(s.peerChoking).toBe(true)
      expect(s.peerInterested).toBe(false)
      expect(s.haveStateReceived).toBe(true)
    }
  })

  it('a seeder announces have-all', async () => {
    const [leecher, seeder] = await twoSessions([], 'all')
    expect(leecher.session.peerHasAll).toBe(true)
    expect(leecher.session.peerHas?.count()).toBe(PIECES)
    expect(seeder.session.peerHasAll).toBe(false)
    expect(seeder.session.peerHas?.count()).toBe(0)
  })

  it('a partial peer announces a bitfield', async () => {
    const [a, b] = await twoSessions([0, 3, 9], [])
    const seen = b.session.peerHas as Bitfield
    expect(b.session.peerHasAll).toBe(false)
    expect(seen.count()).toBe(3)
    expect([0, 3, 9].every(p => seen.get(p))).toBe(true)
    expect(seen.get(1)).toBe(false)
    expect(a.session.peerHas?.count()).toBe(0)
  })

  it('sends handshake then the have-state as its first messages', async () => {
    const { raw } = await sessionWithRawPeer([1, 2])
    await until(() => { expect(raw.received).toHaveLength(2) })
    const [hs, bf] = raw.received
    expect(hs.type === MessageType.Handshake && [...hs.manifest]).toEqual([...MANIFEST])
    expect(bf.type === MessageType.Bitfield && [...bf.bitfield]).toEqual([...bitfieldOf([1, 2]).toBytes()])
  })

  it('have messages update the peer\'s pieces; a repeated have is ignored', async () => {
    const [a, b] = await twoSessions([], [])
    b.session.have(4)
    b.session.have(4)
    b.session.have(7)
    await until(() => { expect(a.delegate.haves).toEqual([4, 7]) })
    expect(a.session.peerHas?.get(4)).toBe(true)
    expect(a.session.peerHasAll).toBe(false)
  })

  it('the last have makes the peer a seeder', async () => {
    const [a, b] = await twoSessions([], [0, 1, 2, 3, 4, 5, 6, 7, 8])
    expect(a.session.peerHasAll).toBe(false)
    b.session.have(9)
    await until(() => { expect(a.session.peerHasAll).toBe(true) })
  })

  it('keep-alives are accepted silently', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(encodeKeepAlive(), encodeKeepAlive(), encodeHave(2))
    await until(() => { expect(side.delegate.haves).toEqual([2]) })
    expect(side.session.closed).toBe(false)
  })

  it('closing quietly ends both sessions without a reason', async () => {
    const [a, b] = await twoSessions([], 'all')
    a.session.close()
    await until(() => {
      expect(a.delegate.closes).toEqual([undefined])
      expect(b.delegate.closes).toEqual([undefined])
    })
    expect(a.logs).toEqual([])
    expect(b.logs).toEqual([])
  })

  it('when the remote ends its stream, the session closes its own side too', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    await raw.stream.close()
    await until(() => { expect(side.delegate.closes).toEqual([undefined]) })
    // both directions are done: the stream is not left half open
    await until(() => {
      expect(side.stream.status).toBe('closed')
      expect(raw.stream.status).toBe('closed')
    })
  })
})

describe('PeerSession: interest, choking and transfer', () => {
  it('interested / not-interested reach the other side once per change', async () => {
    const [a, b] = await twoSessions([], 'all')
    a.session.setInterested(true)
    a.session.setInterested(true)
    await until(() => { expect(b.delegate.interest).toEqual([true]) })
    expect(a.session.amInterested).toBe(true)
    a.session.setInterested(false)
    await until(() => { expect(b.delegate.interest).toEqual([true, false]) })
    expect(b.session.peerInterested).toBe(false)
  })

  it('a requested block is served by readBlock and delivered to onBlock', async () => {
    const [a, b] = await twoSessions([], 'all')
    a.session.setInterested(true)
    await until(() => { expect(b.session.peerInterested).toBe(true) })
    b.session.unchoke()
    await until(() => { expect(a.delegate.unchokes).toBe(1) })
    expect(a.session.peerChoking).toBe(false)
    expect(a.session.lastBlockAt).toBeGreaterThan(0)

    const wanted = [block(2, 16384), block(9, 0, LAST_PIECE_SIZE)]
    a.session.request(wanted)
    expect(a.session.outstanding.size).toBe(2)
    await until(() => { expect(a.delegate.blocks).toHaveLength(2) })

    expect(b.delegate.reads).toEqual(wanted)
    for (const [i, w] of wanted.entries()) {
      const got = a.delegate.blocks[i]
      expect({ piece: got.piece, offset: got.offset }).toEqual({ piece: w.piece, offset: w.offset })
      expect(Buffer.from(got.data).equals(blockBytes(w.piece, w.offset, w.length))).toBe(true)
    }
    expect(a.session.outstanding.size).toBe(0)
    expect(b.delegate.uploaded).toBe(B + LAST_PIECE_SIZE)
    expect(b.session.up.rate()).toBeGreaterThan(0)
    expect(a.session.down.rate()).toBeGreaterThan(0)
    expect([a.delegate.closes, b.delegate.closes]).toEqual([[], []])
  })

  it('serves a whole piece asked for in one burst', async () => {
    const [a, b] = await twoSessions([], [5])
    b.session.unchoke()
    await until(() => { expect(a.session.peerChoking).toBe(false) })
    a.session.request([block(5, 0), block(5, 16384)])
    await until(() => { expect(a.delegate.blocks).toHaveLength(2) })
    const piece = Buffer.concat(a.delegate.blocks.map(x => x.data))
    expect(piece.equals(Buffer.concat([blockBytes(5, 0, 16384), blockBytes(5, 16384, 16384)]))).toBe(true)
  })

  it('a request while choked comes back as a reject (BEP 6)', async () => {
    const [a, b] = await twoSessions([], 'all')
    const wanted = block(1, 0)
    a.session.request([wanted])
    await until(() => { expect(a.delegate.rejects).toEqual([wanted]) })
    expect(a.session.outstanding.size).toBe(0)
    expect(b.delegate.reads).toEqual([])
    expect(a.session.closed || b.session.closed).toBe(false)
  })

  it('being choked drops outstanding requests and reports them to onChoke', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello(encodeBitfield(bitfieldOf([0, 1]).toBytes()))
    raw.send(encodeUnchoke())
    await until(() => { expect(side.session.peerChoking).toBe(false) })
    const wanted = [block(0, 0), block(0, 16384), block(1, 0)]
    side.session.request(wanted)
    await until(() => { expect(raw.of(MessageType.Request)).toHaveLength(3) })

    raw.send(encodeChoke())
    await until(() => { expect(side.delegate.chokes).toEqual([wanted]) })
    expect(side.session.peerChoking).toBe(true)
    expect(side.session.outstanding.size).toBe(0)

    // a block already in flight when the choke was sent is forgiven, not "unsolicited"
    raw.send(encodePiece(0, 16384, blockBytes(0, 16384, B)), encodeHave(3))
    await until(() => { expect(side.delegate.haves).toEqual([3]) })
    expect(side.delegate.blocks).toEqual([])
    expect(side.session.closed).toBe(false)
  })

  it('choking a peer chokes, then rejects its queued requests (the rejects are no refusals)', async () => {
    const [a, b] = await twoSessions([], [1, 2, 3, 4, 5, 6, 7, 8, 9])
    b.delegate.hold()
    b.session.unchoke()
    await until(() => { expect(a.session.peerChoking).toBe(false) })
    const wanted = [block(3, 0), block(3, 16384)]
    a.session.request(wanted)
    await until(() => { expect(b.session.queuedUploads).toBe(2) })

    b.session.choke()
    expect(b.session.queuedUploads).toBe(0)
    await until(() => { expect(a.delegate.chokes).toHaveLength(1) })
    // the choke came first and dropped the requests; the rejects behind it found nothing
    // outstanding, so they did not count as refusals
    expect(a.delegate.chokes[0]).toEqual(wanted)
    // the block being read from disk when we choked is not sent after all
    b.delegate.release()
    a.session.keepAlive(0, 60_000)
    b.session.have(0) // a message after the would-be block, to know the wire is flushed
    await until(() => { expect(a.delegate.haves).toEqual([0]) })
    expect(a.delegate.rejects).toEqual([])
    expect(a.delegate.blocks).toEqual([])
    expect(a.session.closed || b.session.closed).toBe(false)
  })

  it('a cancel removes a queued request', async () => {
    const [a, b] = await twoSessions([], 'all')
    b.delegate.hold()
    b.session.unchoke()
    await until(() => { expect(a.session.peerChoking).toBe(false) })
    const [x, y, z] = [block(4, 0), block(4, 16384), block(6, 0)]
    a.session.request([x, y, z])
    await until(() => { expect(b.session.queuedUploads).toBe(3) })

    a.session.cancel(y)
    expect(a.session.outstanding.has('4:16384')).toBe(false)
    await until(() => { expect(b.session.queuedUploads).toBe(2) })
    b.delegate.release()
    await until(() => { expect(a.delegate.blocks).toHaveLength(2) })

    expect(a.delegate.blocks.map(x => [x.piece, x.offset])).toEqual([[4, 0], [6, 0]])
    expect(b.delegate.reads).toEqual([x, z])
    expect(a.session.outstanding.size).toBe(0)
  })

  it('a cancel of the block being read from disk stops it being sent', async () => {
    const [a, b] = await twoSessions([], 'all')
    b.delegate.hold()
    b.session.unchoke()
    await until(() => { expect(a.session.peerChoking).toBe(false) })
    const [x, y] = [block(4, 0), block(4, 16384)]
    a.session.request([x, y])
    await until(() => { expect(b.delegate.reads).toEqual([x]) })

    a.session.cancel(x)
    await until(() => { expect(b.session.queuedUploads).toBe(1) })
    b.delegate.release()
    await until(() => { expect(a.delegate.blocks).toHaveLength(1) })
    expect(a.delegate.blocks[0].offset).toBe(16384)
    expect(b.delegate.uploaded).toBe(B)
  })

  it('expired requests are cancelled and returned', async () => {
    let now = 1_000
    const [sa, sb] = await pair()
    const raw = new RawPeer(sb)
    const delegate = new FakeDelegate(new Set())
    const session = new PeerSession({
      stream: sa, remotePeer: 'p', geometry, delegate, localHave: () => new Bitfield(PIECES), log: () => {}, now: () => now
    })
    session.start()
    session.request([block(0, 0)])
    now += 5_000
    session.request([block(0, 16384)])
    now += 1_000
    expect(session.expireRequests(5_500)).toEqual([block(0, 0)])
    expect([...session.outstanding.keys()]).toEqual(['0:16384'])
    await until(() => { expect(raw.of(MessageType.Cancel)).toEqual([{ type: MessageType.Cancel, ...block(0, 0) }]) })
  })
})

describe('PeerSession: hostile input closes only that session, with a reason', () => {
  it('a message before the handshake', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHaveAll())
    await expectClosedFor(side, raw, /have-all before handshake/)
  })

  it('a handshake for another manifest', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(OTHER_MANIFEST), encodeHaveAll())
    await expectClosedFor(side, raw, /handshake for another manifest/)
  })

  it('a handshake of an unknown wire version', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(MANIFEST, 3))
    await expectClosedFor(side, raw, /unsupported wire version 3/)
  })

  it('a second handshake', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(encodeHandshake(MANIFEST))
    await expectClosedFor(side, raw, /second handshake/)
  })

  it('a bitfield of the wrong length', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(MANIFEST), encodeBitfield(new Uint8Array(3)))
    await expectClosedFor(side, raw, /InvalidBitfieldError: bitfield is 3 bytes, expected 2/)
  })

  it('a bitfield with spare bits set', async () => {
    const { side, raw } = await sessionWithRawPeer()
    // 10 pieces: the low 6 bits of the second byte lie past the last piece
    raw.send(encodeHandshake(MANIFEST), encodeBitfield(Uint8Array.of(0xff, 0b1100_0001)))
    await expectClosedFor(side, raw, /spare bits/)
  })

  it('a second bitfield', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(MANIFEST), encodeBitfield(Uint8Array.of(0x80, 0)), encodeBitfield(Uint8Array.of(0xc0, 0)))
    await expectClosedFor(side, raw, /bitfield after the have-state was set/)
    expect(side.delegate.haveStates).toBe(1)
  })

  it('have-all after a bitfield', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(MANIFEST), encodeBitfield(Uint8Array.of(0x80, 0)), encodeHaveAll())
    await expectClosedFor(side, raw, /have-all after the have-state was set/)
  })

  it('a have for a piece out of range', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(encodeHave(PIECES))
    await expectClosedFor(side, raw, /have for piece 10 of 10/)
    expect(side.delegate.haves).toEqual([])
  })

  it('a have before the have-state', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHandshake(MANIFEST), encodeHave(1))
    await expectClosedFor(side, raw, /have before bitfield, have-all or have-none/)
  })

  it('a request for a piece we do not have', async () => {
    const { side, raw } = await sessionWithRawPeer([0, 1])
    side.session.unchoke()
    raw.hello()
    raw.send(encodeRequest(block(4, 0)))
    await expectClosedFor(side, raw, /request for piece 4, which we do not have/)
    expect(side.delegate.reads).toEqual([])
  })

  it('a request for a piece out of range', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeRequest(block(PIECES, 0)))
    await expectClosedFor(side, raw, /request for piece 10 of 10/)
  })

  it('a request larger than MAX_BLOCK_LENGTH', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    side.session.unchoke()
    raw.hello()
    raw.send(encodeRequest(block(0, 0, MAX_BLOCK_LENGTH + 1)))
    await expectClosedFor(side, raw, new RegExp(`request of ${MAX_BLOCK_LENGTH + 1} bytes \\(max ${MAX_BLOCK_LENGTH}\\)`))
    expect(side.delegate.reads).toEqual([])
  })

  it('a request of zero bytes', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeRequest(block(0, 0, 0)))
    await expectClosedFor(side, raw, /request of 0 bytes/)
  })

  it('a request past the end of a piece', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    side.session.unchoke()
    raw.hello()
    raw.send(encodeRequest(block(0, PIECE_SIZE - 100, 200)))
    await expectClosedFor(side, raw, /request past the end of piece 0/)
  })

  it('a request past the end of the short last piece', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    side.session.unchoke()
    raw.hello()
    // a whole block, but the last piece has only 10,000 bytes
    raw.send(encodeRequest(block(PIECES - 1, 0)))
    await expectClosedFor(side, raw, /request past the end of piece 9/)
  })

  it('a request with an offset near 2^32 (no overflow wrap-around)', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeRequest(block(0, 0xffffffff, 1)))
    await expectClosedFor(side, raw, /past the end of piece 0/)
  })

  it('a request before the have-state', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.send(encodeHandshake(MANIFEST), encodeRequest(block(0, 0)))
    await expectClosedFor(side, raw, /request before bitfield, have-all or have-none/)
  })

  it('an unsolicited block', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello(encodeHaveAll())
    raw.send(encodePiece(0, 0, blockBytes(0, 0, 100)))
    await expectClosedFor(side, raw, /unsolicited block 0\/0/)
    expect(side.delegate.blocks).toEqual([])
  })

  it('a block of another size than requested', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello(encodeHaveAll())
    raw.send(encodeUnchoke())
    await until(() => { expect(side.session.peerChoking).toBe(false) })
    side.session.request([block(0, 0)])
    await until(() => { expect(raw.of(MessageType.Request)).toHaveLength(1) })
    raw.send(encodePiece(0, 0, blockBytes(0, 0, 100)))
    await expectClosedFor(side, raw, /block 0\/0 has 100 bytes, asked for 16384/)
    expect(side.delegate.blocks).toEqual([])
  })

  it('raw garbage bytes after the handshake', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(Uint8Array.of(3, 0xee, 1, 2))
    await expectClosedFor(side, raw, /InvalidMessageError: unknown message type 238/)
  })

  it('raw garbage bytes instead of a handshake', async () => {
    const { side, raw } = await sessionWithRawPeer()
    // 'G' reads as a frame of 71 bytes, 'E' as message type 69
    raw.send(new TextEncoder().encode(`GET /${'x'.repeat(100)} HTTP/1.1\r\nHost: example\r\n\r\n`))
    await expectClosedFor(side, raw, /InvalidMessageError: unknown message type 69/)
  })

  it('a frame longer than the maximum', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(Uint8Array.of(0xff, 0xff, 0x7f))
    await expectClosedFor(side, raw, /InvalidMessageError: bad frame/)
  })

  it('a stream that ends inside a frame', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(encodeHave(1).subarray(0, 3))
    await raw.stream.close()
    await until(() => { expect(side.delegate.closes).toHaveLength(1) })
    expect(side.delegate.closes[0]).toMatch(/TruncatedFrameError: stream ended inside a frame/)
    expect(side.logs[0]).toContain('TruncatedFrameError')
  })

  it(`more than ${MAX_QUEUED_REQUESTS} queued requests`, async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    side.delegate.hold() // nothing leaves the queue
    side.session.unchoke()
    raw.hello()
    const requests = Array.from({ length: MAX_QUEUED_REQUESTS }, (_, i) =>
      encodeRequest(block(i % PIECES === PIECES - 1 ? 0 : i % PIECES, (i % 2) * 16384)))
    raw.send(new Uint8ArrayList(...requests))
    await until(() => { expect(side.session.queuedUploads).toBe(MAX_QUEUED_REQUESTS) })
    expect(side.session.closed).toBe(false)

    raw.send(encodeRequest(block(0, 0)))
    await expectClosedFor(side, raw, /more than 512 queued requests/)
    expect(side.session.queuedUploads).toBe(0)
    side.delegate.release()
  })

  it(`more than ${MAX_QUEUED_REQUESTS} requests while choked`, async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    const requests = Array.from({ length: MAX_QUEUED_REQUESTS + 1 }, () => encodeRequest(block(0, 0)))
    raw.send(new Uint8ArrayList(...requests))
    await expectClosedFor(side, raw, /requests while choked/)
  })

  it('a length prefix longer than any frame can need', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    raw.send(Uint8Array.of(0x80, 0x80, 0x80, 0x80))
    await expectClosedFor(side, raw, /length prefix too long/)
  })

  it('a peer that goes silent is closed; a quiet one gets keep-alives', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.hello()
    await until(() => { expect(side.session.haveStateReceived).toBe(true) })
    side.session.keepAlive(0, 60_000)
    await until(() => { expect(raw.of(MessageType.KeepAlive)).toHaveLength(1) })
    expect(side.session.closed).toBe(false)
    side.session.keepAlive(0, -1)
    await expectClosedFor(side, raw, /nothing received for/)
  })

  it('leaves the other sessions of the process working', async () => {
    const [a, b] = await twoSessions([], 'all')
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeInterested(), encodeRequest(block(0, 0, MAX_BLOCK_LENGTH * 2)))
    await expectClosedFor(side, raw, new RegExp(`request of ${MAX_BLOCK_LENGTH * 2} bytes`))

    b.session.unchoke()
    await until(() => { expect(a.session.peerChoking).toBe(false) })
    a.session.request([block(8, 16384)])
    await until(() => { expect(a.delegate.blocks).toHaveLength(1) })
    expect([a.session.closed, b.session.closed]).toEqual([false, false])
  })

  it('closes once, even when the hostile peer keeps writing', async () => {
    const { side, raw } = await sessionWithRawPeer()
    raw.send(encodeHave(1), encodeHave(2), Uint8Array.of(1, 0xee))
    await expectClosedFor(side, raw, /have before handshake/)
    side.session.close('again')
    expect(side.delegate.closes).toHaveLength(1)
    expect(side.logs).toHaveLength(1)
  })

  it('a cancel for something never requested is harmless', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeCancel(block(0, 0)), encodeHave(5))
    await until(() => { expect(side.delegate.haves).toEqual([5]) })
    expect(side.session.closed).toBe(false)
  })

  it('a reject for something never requested is harmless too', async () => {
    const { side, raw } = await sessionWithRawPeer('all')
    raw.hello()
    raw.send(encodeReject(block(0, 0)), encodeHave(5))
    await until(() => { expect(side.delegate.haves).toEqual([5]) })
    expect(side.delegate.rejects).toEqual([])
    expect(side.session.closed).toBe(false)
  })

  // cancels and rejects are held to the same block checks as requests
  const outside: Array<[string, BlockSpec, RegExp]> = [
    ['a piece past the last', block(PIECES, 0), /for piece 10 of 10/],
    ['more than a frame carries', block(0, 0, MAX_BLOCK_LENGTH + 1), new RegExp(`of ${MAX_BLOCK_LENGTH + 1} bytes`)],
    ['past the end of the short last piece', block(PIECES - 1, 0, LAST_PIECE_SIZE + 1), /past the end of piece 9/]
  ]
  for (const [what, b, reason] of outside) {
    it(`a cancel naming ${what} closes the session`, async () => {
      const { side, raw } = await sessionWithRawPeer('all')
      raw.hello()
      raw.send(encodeCancel(b))
      expect(await expectClosedFor(side, raw, reason)).toMatch(/^ProtocolError: cancel /)
    })

    it(`a reject naming ${what} closes the session`, async () => {
      const { side, raw } = await sessionWithRawPeer('all')
      raw.hello()
      raw.send(encodeReject(b))
      expect(await expectClosedFor(side, raw, reason)).toMatch(/^ProtocolError: reject /)
    })
  }
})

describe('PeerSession: writes', () => {
  /** a session past its start, with the raw peer's handshake and have-state read */
  async function started (): Promise<{ side: Side, raw: RawPeer }> {
    const { side, raw } = await sessionWithRawPeer([1, 2, 3, 4, 5, 6, 7])
    raw.hello()
    await until(() => { expect(raw.received).toHaveLength(2) })
    await until(() => { expect(side.session.haveStateReceived).toBe(true) })
    return { side, raw }
  }

  it('a tick\'s frames go out as one buffer, one write', async () => {
    const { side, raw } = await started()
    const send = vi.spyOn(side.stream, 'send')
    side.session.setInterested(true)
    side.session.request([block(0, 0), block(0, B), block(1, 0)])
    side.session.have(8)
    await until(() => { expect(raw.received).toHaveLength(7) })
    expect(send).toHaveBeenCalledTimes(1)
    expect(send.mock.calls[0][0]).toBeInstanceOf(Uint8Array)
    expect(raw.received.slice(2).map(m => m.type)).toEqual([MessageType.Interested, MessageType.Request, MessageType.Request, MessageType.Request, MessageType.Have])
  })

  it('a have with nothing else to send waits up to HAVE_DELAY_MS, then goes alone', async () => {
    const { side, raw } = await started()
    const t0 = performance.now()
    side.session.have(8)
    side.session.have(9)
    await until(() => { expect(raw.of(MessageType.Have).map(m => m.piece)).toEqual([8, 9]) })
    expect(performance.now() - t0).toBeGreaterThanOrEqual(HAVE_DELAY_MS - 5)
  })

  it('waiting haves leave with the next frame, before it: frames keep the order they were sent in', async () => {
    const { side, raw } = await started()
    const send = vi.spyOn(side.stream, 'send')
    const t0 = performance.now()
    side.session.have(8)
    side.session.setInterested(true)
    side.session.have(9)
    await until(() => { expect(raw.received).toHaveLength(5) })
    expect(performance.now() - t0).toBeLessThan(HAVE_DELAY_MS)
    expect(send).toHaveBeenCalledTimes(1)
    expect(raw.received.slice(2).map(m => m.type === MessageType.Have ? m.piece : m.type)).toEqual([8, MessageType.Interested, 9])
  })

  it('closing quietly sends the waiting haves first', async () => {
    const { side, raw } = await started()
    side.session.have(8)
    side.session.close()
    await until(() => { expect(raw.of(MessageType.Have).map(m => m.piece)).toEqual([8]) })
  })

  it('a closed session sends no waiting haves', async () => {
    const { side, raw } = await started()
    side.session.have(8)
    side.session.close('test')
    await new Promise(resolve => setTimeout(resolve, HAVE_DELAY_MS + 20))
    expect(raw.of(MessageType.Have)).toEqual([])
  })
})
