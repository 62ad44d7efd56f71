import { describe, expect, it } from 'vitest'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  encodeMessage,
  decodeMessage, encodeBitfield, encodeCancel, encodeChoke, encodeHandshake, encodeHave, encodeHaveAll, encodeHaves,
  encodeHaveNone, encodeInterested, encodeKeepAlive, encodeNotInterested, encodePeers, encodePiece, encodeReject,
  encodeRequest, encodeUnchoke, InvalidMessageError, MAX_BLOCK_LENGTH, MAX_FRAME_LENGTH, MessageType,
  messageName, TruncatedFrameError, WIRE_VERSION, WireDecoder, type WireMessage, type WirePeer
} from '../../src/wire/codec.js'
import { prng } from '../helpers/prng.js'
import { expectWellFormed } from '../helpers/wire.js'

const randInt = (random: () => number, n: number): number => Math.floor(random() * n)

function randomBytes (random: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = randInt(random, 256)
  return out
}

function bytesOf (data: Uint8Array | Uint8ArrayList): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

function concat (parts: Array<Uint8Array | Uint8ArrayList>): Uint8Array {
  return new Uint8ArrayList(...parts).subarray()
}

/** Replaces Uint8ArrayList payloads by plain arrays so that messages compare with toEqual. */
function plain (msg: WireMessage): Record<string, unknown> {
  if (msg.type === MessageType.Piece) return { ...msg, data: Array.from(msg.data.subarray()) }
  if (msg.type === MessageType.Handshake) return { ...msg, manifest: Array.from(msg.manifest) }
  if (msg.type === MessageType.Bitfield) return { ...msg, bitfield: Array.from(msg.bitfield) }
  if (msg.type === MessageType.Peers) return { ...msg, peers: msg.peers.map(p => ({ id: Array.from(p.id), addrs: p.addrs.map(a => Array.from(a)) })) }
  return { ...msg }
}

const encode = encodeMessage

function varintOf (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

function decodeAll (decoder: WireDecoder, chunks: Array<Uint8Array | Uint8ArrayList>): WireMessage[] {
  const out: WireMessage[] = []
  for (const chunk of chunks) out.push(...decoder.decode(chunk))
  return out
}

/** Cuts `bytes` into pieces at random points (some of them empty). */
function randomSplit (random: () => number, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let at = 0
  while (at < bytes.byteLength) {
    const n = randInt(random, Math.min(bytes.byteLength - at, 40) + 1)
    chunks.push(bytes.subarray(at, at + n))
    at += n
  }
  return chunks
}

function expectInvalid (bytes: Uint8Array | Uint8ArrayList, pattern?: RegExp): InvalidMessageError {
  let caught: unknown
  try {
    decodeAll(new WireDecoder(), [bytes])
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(InvalidMessageError)
  const err = caught as InvalidMessageError
  expect(err.name).toBe('InvalidMessageError')
  if (pattern != null) expect(err.message).toMatch(pattern)
  return err
}

const MANIFEST = Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...Array.from({ length: 32 }, (_, i) => i * 7)])
const BLOCK = Uint8Array.from({ length: MAX_BLOCK_LENGTH }, (_, i) => (i * 31 + 7) & 0xff)

const bytesN = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)
/** Two peers, the first with two addrs, the second with none. */
const PEERS: WirePeer[] = [
  { id: bytesN(38, 0x11), addrs: [bytesN(8, 0x22), bytesN(20, 0x33)] },
  { id: bytesN(34, 0x44), addrs: [] }
]
const SHORT_PEERS: WirePeer[] = [
  { id: Uint8Array.of(1, 2, 3), addrs: [Uint8Array.of(4, 127, 0, 0, 1), Uint8Array.of(0xaa)] },
  { id: Uint8Array.of(9), addrs: [] }
]
/** Every field at its cap: 50 peers × (64-byte id, 8 addrs × 255 bytes), a 106,102-byte frame body. */
const MAX_PEERS: WirePeer[] = Array.from({ length: 50 }, (_, p) => ({
  id: bytesN(64, p),
  addrs: Array.from({ length: 8 }, (_, a) => bytesN(255, (p * 8 + a) & 0xff))
}))

/** One of every message type, with edge values where a field has any. */
const SAMPLES: Array<[string, Uint8Array | Uint8ArrayList, WireMessage]> = [
  ['handshake', encodeHandshake(MANIFEST), { type: MessageType.Handshake, version: WIRE_VERSION, manifest: MANIFEST }],
  ['handshake of another version', encodeHandshake(Uint8Array.of(9), 255), { type: MessageType.Handshake, version: 255, manifest: Uint8Array.of(9) }],
  ['bitfield', encodeBitfield(Uint8Array.of(0xa5, 0x80)), { type: MessageType.Bitfield, bitfield: Uint8Array.of(0xa5, 0x80) }],
  ['empty bitfield', encodeBitfield(new Uint8Array(0)), { type: MessageType.Bitfield, bitfield: new Uint8Array(0) }],
  ['have-all', encodeHaveAll(), { type: MessageType.HaveAll }],
  ['have-none', encodeHaveNone(), { type: MessageType.HaveNone }],
  ['have 0', encodeHave(0), { type: MessageType.Have, piece: 0 }],
  ['have 2^32-1', encodeHave(0xffffffff), { type: MessageType.Have, piece: 0xffffffff }],
  ['interested', encodeInterested(), { type: MessageType.Interested }],
  ['not-interested', encodeNotInterested(), { type: MessageType.NotInterested }],
  ['choke', encodeChoke(), { type: MessageType.Choke }],
  ['unchoke', encodeUnchoke(), { type: MessageType.Unchoke }],
  ['request', encodeRequest({ piece: 3, offset: 16384, length: 16384 }), { type: MessageType.Request, piece: 3, offset: 16384, length: 16384 }],
  ['request of max u32 fields', encodeRequest({ piece: 0xffffffff, offset: 0xfffffffe, length: 0x80000000 }), { type: MessageType.Request, piece: 0xffffffff, offset: 0xfffffffe, length: 0x80000000 }],
  ['piece (full block)', encodePiece(7, 32768, BLOCK), { type: MessageType.Piece, piece: 7, offset: 32768, data: new Uint8ArrayList(BLOCK) }],
  ['piece (one byte)', encodePiece(0, 5, Uint8Array.of(42)), { type: MessageType.Piece, piece: 0, offset: 5, data: new Uint8ArrayList(Uint8Array.of(42)) }],
  ['cancel', encodeCancel({ piece: 1, offset: 0, length: 100 }), { type: MessageType.Cancel, piece: 1, offset: 0, length: 100 }],
  ['reject', encodeReject({ piece: 2, offset: 49152, length: 1 }), { type: MessageType.Reject, piece: 2, offset: 49152, length: 1 }],
  ['keep-alive', encodeKeepAlive(), { type: MessageType.KeepAlive }],
  ['peers', encodePeers(PEERS), { type: MessageType.Peers, peers: PEERS }],
  ['peers (none)', encodePeers([]), { type: MessageType.Peers, peers: [] }],
  ['peers (short, so random mutations reach it whole)', encodePeers(SHORT_PEERS), { type: MessageType.Peers, peers: SHORT_PEERS }],
  ['peers (every cap reached)', encodePeers(MAX_PEERS), { type: MessageType.Peers, peers: MAX_PEERS }]
]

describe('wire codec: round trip', () => {
  it('covers every message type', () => {
    const types = new Set(SAMPLES.map(([, , msg]) => msg.type))
    const all = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number')
    expect([...types].sort((a, b) => a - b)).toEqual(all)
  })

  it.each(SAMPLES)('%s survives encode → decode, fed whole', (_name, bytes, expected) => {
    const decoder = new WireDecoder()
    const out = decodeAll(decoder, [bytes])
    expect(out.map(plain)).toEqual([plain(expected)])
    expect(decoder.pending).toBe(0)
    expect(() => { decoder.end() }).not.toThrow()
  })

  it.each(SAMPLES)('%s survives encode → decode, fed byte by byte', (_name, bytes, expected) => {
    const flat = bytesOf(bytes)
    const decoder = new WireDecoder()
    const out: WireMessage[] = []
    let early: string | undefined
    for (let i = 0; i < flat.byteLength; i++) {
      out.push(...decoder.decode(flat.subarray(i, i + 1)))
      // nothing comes out before the last byte, and the decoder counts what it holds
      if (i < flat.byteLength - 1 && early == null && (out.length > 0 || decoder.pending !== i + 1)) {
        early = `after byte ${i}: ${out.length} messages, ${decoder.pending} pending`
      }
    }
    expect(early).toBeUndefined()
    expect(out.map(plain)).toEqual([plain(expected)])
    expect(decoder.pending).toBe(0)
    decoder.end()
  })

  it('decodes all messages back to back, in random splits, in order', () => {
    const random = prng(1)
    const stream = concat(SAMPLES.map(([, bytes]) => bytes))
    const expected = SAMPLES.map(([, , msg]) => plain(msg))
    for (let round = 0; round < 20; round++) {
      const decoder = new WireDecoder()
      const out = decodeAll(decoder, randomSplit(random, stream))
      expect(out.map(plain)).toEqual(expected)
      expect(decoder.pending).toBe(0)
      decoder.end()
    }
  })

  it('accepts a Uint8ArrayList chunk as well as a Uint8Array', () => {
    const list = new Uint8ArrayList(encodeHave(1), encodePiece(1, 0, Uint8Array.of(1, 2, 3)))
    const out = decodeAll(new WireDecoder(), [list])
    expect(out.map(plain)).toEqual([
      { type: MessageType.Have, piece: 1 },
      { type: MessageType.Piece, piece: 1, offset: 0, data: [1, 2, 3] }
    ])
  })

  it('decodes a frame of exactly MAX_FRAME_LENGTH', () => {
    const bits = new Uint8Array(MAX_FRAME_LENGTH - 1).fill(0xff)
    const out = decodeAll(new WireDecoder(), [encodeBitfield(bits)])
    expect(out).toHaveLength(1)
    expect(out[0].type === MessageType.Bitfield && out[0].bitfield.byteLength).toBe(MAX_FRAME_LENGTH - 1)
  })

  it('names message types, and unknown ones too', () => {
    expect(messageName(MessageType.HaveNone)).toBe('have-none')
    expect(messageName(MessageType.KeepAlive)).toBe('keep-alive')
    expect(messageName(MessageType.Peers)).toBe('peers')
    expect(messageName(99 as MessageType)).toBe('unknown(99)')
  })
})

describe('wire codec: golden bytes (frame = varint(len) | type | payload, u32 big-endian)', () => {
  it('have(5)', () => {
    expect([...encodeHave(5)]).toEqual([5, 4, 0, 0, 0, 5])
  })

  it('have(0x01020304)', () => {
    expect([...encodeHave(0x01020304)]).toEqual([5, 4, 1, 2, 3, 4])
  })

  it('haves: several have frames end to end, the bytes of each encodeHave', () => {
    const pieces = [0, 5, 0x01020304, 0xffffffff]
    expect([...encodeHaves(pieces)]).toEqual([...concat(pieces.map(p => encodeHave(p)))])
    expect(encodeHaves([])).toHaveLength(0)
    const decoded = [...new WireDecoder().decode(encodeHaves(pieces))]
    expect(decoded).toEqual(pieces.map(piece => ({ type: MessageType.Have, piece })))
  })

  it('keep-alive, have-all, interested, choke: a type byte only', () => {
    expect([...encodeKeepAlive()]).toEqual([1, 13])
    expect([...encodeHaveAll()]).toEqual([1, 2])
    expect([...encodeInterested()]).toEqual([1, 5])
    expect([...encodeChoke()]).toEqual([1, 7])
  })

  it('handshake: <0><version><manifest bytes>', () => {
    expect([...encodeHandshake(Uint8Array.of(0xaa, 0xbb))]).toEqual([4, 0, 2, 0xaa, 0xbb])
  })

  it('bitfield: <1><bits>', () => {
    expect([...encodeBitfield(Uint8Array.of(0xf0))]).toEqual([2, 1, 0xf0])
  })

  it('request, cancel, reject: <type><piece><offset><length>', () => {
    const spec = { piece: 1, offset: 16384, length: 16384 }
    const tail = [0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
    expect([...encodeRequest(spec)]).toEqual([13, 9, ...tail])
    expect([...encodeCancel(spec)]).toEqual([13, 11, ...tail])
    expect([...encodeReject(spec)]).toEqual([13, 12, ...tail])
  })

  it('piece: <10><piece><offset><block>, block not copied', () => {
    const block = Uint8Array.of(1, 2, 3)
    const list = encodePiece(2, 0x10000, block)
    expect([...list.subarray()]).toEqual([12, 10, 0, 0, 0, 2, 0, 1, 0, 0, 1, 2, 3])
    // the header and the caller's block, as two chunks
    expect([...list]).toHaveLength(2)
    expect([...list][1]).toBe(block)
  })

  it('peers: <14><count> then <idLen><id><addrCount> and <len: u16><addr> per addr', () => {
    const bytes = encodePeers([
      { id: Uint8Array.of(0xa1, 0xa2), addrs: [Uint8Array.of(0xb1), Uint8Array.of(0xc1, 0xc2, 0xc3)] },
      { id: Uint8Array.of(0xd1), addrs: [] }
    ])
    expect([...bytes]).toEqual([
      17, 14, 2,
      2, 0xa1, 0xa2, 2, 0, 1, 0xb1, 0, 3, 0xc1, 0xc2, 0xc3,
      1, 0xd1, 0
    ])
    expect([...encodePeers([])]).toEqual([2, 14, 0])
  })

  it('peers: an addr of 255 bytes has a length of 0x00 0xff, and a full message a 3-byte varint prefix', () => {
    const bytes = encodePeers([{ id: Uint8Array.of(7), addrs: [bytesN(255, 9)] }])
    expect([...bytes.subarray(0, 8)]).toEqual([0x86, 0x02, 14, 1, 1, 7, 1, 0x00])
    expect(bytes[8]).toBe(0xff)
    expect(bytes.byteLength).toBe(2 + 262)
    // 1 + 1 + 50 × (1 + 64 + 1 + 8 × (2 + 255)) = 106102 = 0b110_0111100_1110110 → 0xf6 0xbc 0x06
    const full = encodePeers(MAX_PEERS)
    expect([...full.subarray(0, 4)]).toEqual([0xf6, 0xbc, 0x06, 14])
    expect(full.byteLength).toBe(3 + 106102)
    expect(106102).toBeLessThanOrEqual(MAX_FRAME_LENGTH)
  })

  it('piece with a 64 KiB block has a 3-byte varint prefix', () => {
    // 1 + 8 + 65536 = 65545 = 0b100_0000000_0001001 → 0x89 0x80 0x04
    const bytes = encodePiece(0, 0, BLOCK).subarray()
    expect([...bytes.subarray(0, 4)]).toEqual([0x89, 0x80, 0x04, 10])
    expect(bytes.byteLength).toBe(3 + 65545)
  })
})

describe('wire codec: malformed input', () => {
  it('rejects unknown message types', () => {
    expectInvalid(Uint8Array.of(1, 15), /unknown message type 15/)
    expectInvalid(Uint8Array.of(3, 255, 1, 2), /unknown message type 255/)
  })

  it('rejects a have of the wrong length', () => {
    expectInvalid(Uint8Array.of(4, 4, 0, 0, 5), /have must be 5 bytes, got 4/)
    expectInvalid(Uint8Array.of(6, 4, 0, 0, 0, 5, 0), /have must be 5 bytes, got 6/)
  })

  it('rejects request, cancel and reject of the wrong length', () => {
    for (const type of [MessageType.Request, MessageType.Cancel, MessageType.Reject]) {
      expectInvalid(Uint8Array.of(12, type, ...new Uint8Array(11)), /must be 13 bytes, got 12/)
      expectInvalid(Uint8Array.of(14, type, ...new Uint8Array(13)), /must be 13 bytes, got 14/)
    }
  })

  it('rejects payloads on messages that have none', () => {
    for (const type of [MessageType.HaveAll, MessageType.HaveNone, MessageType.Interested, MessageType.NotInterested,
      MessageType.Choke, MessageType.Unchoke, MessageType.KeepAlive]) {
      expectInvalid(Uint8Array.of(2, type, 0), /must be 1 bytes, got 2/)
    }
  })

  it('rejects a piece with a block over 64 KiB', () => {
    expectInvalid(encodePiece(0, 0, new Uint8Array(MAX_BLOCK_LENGTH + 1)), /block of 65537 bytes exceeds 65536/)
  })

  it('rejects a piece with no block', () => {
    expectInvalid(Uint8Array.of(9, 10, 0, 0, 0, 0, 0, 0, 0, 0), /piece message too short/)
  })

  it('rejects a handshake that is too short', () => {
    expectInvalid(Uint8Array.of(1, 0), /handshake too short/)
    expectInvalid(Uint8Array.of(2, 0, 1), /handshake too short/)
    expect(() => decodeMessage(new Uint8ArrayList())).toThrow(InvalidMessageError)
  })

  /** A peers frame around a hand-written body (the bytes after the type). */
  const peersFrame = (...payload: number[]): Uint8Array => {
    if (payload.length + 1 > 127) throw new Error('test frames are short')
    return Uint8Array.of(payload.length + 1, 14, ...payload)
  }

  it('rejects a peers message with no count', () => {
    expectInvalid(peersFrame(), /peers: truncated count/)
  })

  it('rejects a peers message of more than 50 peers (BEP 11\'s cap)', () => {
    expectInvalid(peersFrame(51), /51 peers exceed 50/)
    expectInvalid(peersFrame(255), /255 peers exceed 50/)
    // 51 well-formed entries do not save it
    const body = [14, 51, ...Array.from({ length: 51 }, () => [1, 0x2a, 0]).flat()]
    expectInvalid(Uint8Array.of(...varintOf(body.length), ...body), /51 peers exceed 50/)
  })

  it('rejects a peer id of 0 or more than 64 bytes', () => {
    expectInvalid(peersFrame(1, 0, 0), /peer id of 0 bytes, must be 1\.\.64/)
    expectInvalid(peersFrame(1, 65, ...new Uint8Array(65), 0), /peer id of 65 bytes, must be 1\.\.64/)
  })

  it('rejects more than 8 addrs for one peer', () => {
    const addrs = Array.from({ length: 9 }, () => [0, 1, 0x2a]).flat()
    expectInvalid(peersFrame(1, 1, 7, 9, ...addrs), /9 addrs exceed 8/)
  })

  it('rejects an addr of 0 or more than 255 bytes', () => {
    expectInvalid(peersFrame(1, 1, 7, 1, 0, 0), /addr of 0 bytes, must be 1\.\.255/)
    expectInvalid(peersFrame(1, 1, 7, 1, 1, 0, ...new Uint8Array(30)), /addr of 256 bytes, must be 1\.\.255/)
    // the high byte of the u16 counts: 0x0100 is 256, not 0
    expectInvalid(peersFrame(1, 1, 7, 1, 0xff, 0xff), /addr of 65535 bytes/)
  })

  it('rejects a peers message whose entries are cut short', () => {
    // each prefix of one valid entry, with count still saying 1
    const entry = [3, 0xa1, 0xa2, 0xa3, 2, 0, 1, 0xb1, 0, 2, 0xc1, 0xc2]
    expect(decodeAll(new WireDecoder(), [peersFrame(1, ...entry)])).toHaveLength(1)
    for (let cut = 0; cut < entry.length; cut++) {
      expectInvalid(peersFrame(1, ...entry.slice(0, cut)), /peers: truncated/)
    }
    // count promises two entries, one is there
    expectInvalid(peersFrame(2, ...entry), /peers: truncated peer id length/)
  })

  it('rejects trailing bytes after the last peers entry', () => {
    expectInvalid(peersFrame(0, 0), /peers: 1 trailing bytes/)
    expectInvalid(peersFrame(1, 1, 7, 0, 9, 9), /peers: 2 trailing bytes/)
  })

  it('will not encode a peers message the decoder would reject', () => {
    const one = (id: Uint8Array, addrs: Uint8Array[] = []): WirePeer[] => [{ id, addrs }]
    expect(() => encodePeers(Array.from({ length: 51 }, () => ({ id: Uint8Array.of(1), addrs: [] })))).toThrow(/51 peers exceed 50/)
    expect(() => encodePeers(one(new Uint8Array(0)))).toThrow(InvalidMessageError)
    expect(() => encodePeers(one(new Uint8Array(65)))).toThrow(/peer id of 65 bytes/)
    expect(() => encodePeers(one(Uint8Array.of(1), Array.from({ length: 9 }, () => Uint8Array.of(1))))).toThrow(/9 addrs exceed 8/)
    expect(() => encodePeers(one(Uint8Array.of(1), [new Uint8Array(0)]))).toThrow(/addr of 0 bytes/)
    expect(() => encodePeers(one(Uint8Array.of(1), [new Uint8Array(256)]))).toThrow(/addr of 256 bytes/)
  })

  it('decodes peers into copies that do not alias the receive buffer', () => {
    const bytes = encodePeers(PEERS)
    const [msg] = decodeAll(new WireDecoder(), [bytes])
    if (msg.type !== MessageType.Peers) throw new Error('not a peers message')
    bytes.fill(0)
    expect(plain(msg)).toEqual(plain({ type: MessageType.Peers, peers: PEERS }))
  })

  it('rejects a frame length over MAX_FRAME_LENGTH as soon as the prefix is read', () => {
    const prefix = encodeBitfield(new Uint8Array(MAX_FRAME_LENGTH)).subarray(0, 3)
    expectInvalid(prefix, /bad frame/)
    expectInvalid(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f), /bad frame/)
  })

  it('rejects an empty frame instead of skipping it', () => {
    expectInvalid(Uint8Array.of(0), /empty message/)
    expectInvalid(Uint8Array.of(...encodeHave(1), 0, ...encodeHave(2)), /empty message/)
  })

  it('rejects a length prefix that is not minimally encoded', () => {
    // 0x85 0x00 is 5, but takes two bytes: a decoder that trusted it would misframe the stream
    expectInvalid(Uint8Array.of(0x85, 0x00, 4, 0, 0, 0, 5), /bad frame/)
    expectInvalid(Uint8Array.of(0x80, 0x00), /bad frame/)
  })

  it('reports a frame cut short when the stream ends', () => {
    const have = encodeHave(5)
    const decoder = new WireDecoder()
    expect(decodeAll(decoder, [have.subarray(0, 4)])).toEqual([])
    expect(decoder.pending).toBe(4)
    expect(() => { decoder.end() }).toThrow(TruncatedFrameError)
    expect(() => { decoder.end() }).toThrow(/4 bytes left/)
  })

  it('reports a stream that ends inside a length prefix', () => {
    const decoder = new WireDecoder()
    expect(decodeAll(decoder, [encodeHave(1), Uint8Array.of(0x89)])).toHaveLength(1)
    expect(decoder.pending).toBe(1)
    expect(() => { decoder.end() }).toThrow(TruncatedFrameError)
  })

  it('ends cleanly after whole frames only', () => {
    const decoder = new WireDecoder()
    expect(decodeAll(decoder, [encodeHave(1), encodeChoke()])).toHaveLength(2)
    expect(decoder.pending).toBe(0)
    expect(() => { decoder.end() }).not.toThrow()
  })
})

describe('wire codec: random input', () => {
  /** Valid frames, some of them damaged: more interesting than pure noise, which is mostly unknown types. */
  function mutatedFrames (random: () => number): Uint8Array {
    const parts: Uint8Array[] = []
    const n = 1 + randInt(random, 4)
    for (let i = 0; i < n; i++) parts.push(bytesOf(SAMPLES[randInt(random, SAMPLES.length)][1]).slice(0, 64))
    const bytes = concat(parts)
    const flips = randInt(random, 3)
    for (let i = 0; i < flips; i++) bytes[randInt(random, bytes.byteLength)] = randInt(random, 256)
    return bytes.subarray(0, bytes.byteLength - randInt(random, 3))
  }

  it('either yields well-formed messages or throws InvalidMessageError (2,000 seeded inputs)', () => {
    const random = prng(0x5eed)
    let accepted = 0
    let rejected = 0
    for (let i = 0; i < 2000; i++) {
      const input = random() < 0.5 ? randomBytes(random, randInt(random, 48)) : mutatedFrames(random)
      const decoder = new WireDecoder()
      const out: WireMessage[] = []
      try {
        for (const chunk of randomSplit(random, input)) {
          for (const msg of decoder.decode(chunk)) out.push(msg)
        }
      } catch (err) {
        if (!(err instanceof InvalidMessageError)) throw new Error(`input #${i} [${[...input].join(',')}] threw ${String(err)}`)
        rejected++
        continue
      }
      accepted++
      for (const msg of out) expectWellFormed(msg)
      // what was accepted is exactly what the encoders write for these messages
      const consumed = input.byteLength - decoder.pending
      expect([...concat(out.map(encode))], `input #${i}`).toEqual([...input.subarray(0, consumed)])
      try {
        decoder.end()
        expect(decoder.pending).toBe(0)
      } catch (err) {
        expect(err).toBeInstanceOf(TruncatedFrameError)
        expect(decoder.pending).toBeGreaterThan(0)
      }
    }
    // both paths were exercised
    expect(accepted).toBeGreaterThan(100)
    expect(rejected).toBeGreaterThan(100)
  })

  it('a decoder keeps working across many random splits of valid traffic', () => {
    const random = prng(7)
    const decoder = new WireDecoder()
    let expected = 0
    let got = 0
    for (let i = 0; i < 200; i++) {
      const frames = Array.from({ length: 1 + randInt(random, 5) }, () => SAMPLES[randInt(random, SAMPLES.length)][1])
      expected += frames.length
      for (const chunk of randomSplit(random, concat(frames))) got += [...decoder.decode(chunk)].length
    }
    expect(got).toBe(expected)
    decoder.end()
  })
})
