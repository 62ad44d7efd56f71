/**
 * Property-based tests of the wire codec (fast-check): round trips through WireDecoder under
 * any chunking, robustness against arbitrary and corrupted input, and early rejection of
 * oversized frames. Seeded, so every run tries the same inputs.
 */
import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import {
  encodeMessage,
  encodePeers, InvalidMessageError, MAX_BLOCK_LENGTH, MAX_FRAME_LENGTH, MessageType, PEERS_MAX_ADDR_LENGTH,
  PEERS_MAX_ADDRS, PEERS_MAX_COUNT, PEERS_MAX_ID_LENGTH, TruncatedFrameError, WireDecoder, type WireMessage, type WirePeer
} from '../../src/wire/codec.js'
import { expectWellFormed } from '../helpers/wire.js'

const SEED = 0x0b175a
const U32_MAX = 0xffffffff

// --- helpers ----------------------------------------------------------------------------------

function concat (parts: Array<Uint8Array | Uint8ArrayList>): Uint8Array {
  return new Uint8ArrayList(...parts).subarray()
}

const encode = encodeMessage

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** Replaces byte payloads by hex strings so that messages compare with toEqual (and quickly). */
function plain (msg: WireMessage): Record<string, unknown> {
  if (msg.type === MessageType.Piece) return { ...msg, data: hex(msg.data.subarray()) }
  if (msg.type === MessageType.Handshake) return { ...msg, manifest: hex(msg.manifest) }
  if (msg.type === MessageType.Bitfield) return { ...msg, bitfield: hex(msg.bitfield) }
  if (msg.type === MessageType.Peers) return { ...msg, peers: msg.peers.map(p => ({ id: hex(p.id), addrs: p.addrs.map(hex) })) }
  return { ...msg }
}

/** Cuts `bytes` at the given points (mod length, sorted; duplicates make empty chunks). */
function split (bytes: Uint8Array, cuts: number[], asList: boolean[]): Array<Uint8Array | Uint8ArrayList> {
  const points = cuts.map(c => bytes.byteLength === 0 ? 0 : c % (bytes.byteLength + 1)).sort((a, b) => a - b)
  const chunks: Array<Uint8Array | Uint8ArrayList> = []
  let at = 0
  for (const [i, p] of [...points, bytes.byteLength].entries()) {
    const chunk = bytes.subarray(at, p)
    // some chunks arrive as a list of two arrays, as a stream may deliver them
    chunks.push(asList[i % Math.max(asList.length, 1)] === true
      ? new Uint8ArrayList(chunk.subarray(0, chunk.byteLength >> 1), chunk.subarray(chunk.byteLength >> 1))
      : chunk)
    at = p
  }
  return chunks
}

function varintOf (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return out
}

/** A peers frame written by hand, caps unchecked (counts and id lengths wrap at a byte). */
function rawPeers (peers: WirePeer[]): Uint8Array {
  const body: number[] = [MessageType.Peers, peers.length & 0xff]
  for (const { id, addrs } of peers) {
    body.push(id.byteLength & 0xff, ...id, addrs.length & 0xff)
    for (const a of addrs) body.push(a.byteLength >> 8, a.byteLength & 0xff, ...a)
  }
  return Uint8Array.from([...varintOf(body.length), ...body])
}

// --- arbitraries ------------------------------------------------------------------------------

const u32 = fc.oneof(fc.integer({ min: 0, max: U32_MAX }), fc.constantFrom(0, 1, 0x7f, 0x80, 0x7fffffff, 0x80000000, U32_MAX))
/** n bytes of one value: cheap big payloads (fast-check's default sizes stay small) */
const filled = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.integer({ min, max }), fc.integer({ min: 0, max: 255 })).map(([n, b]) => new Uint8Array(n).fill(b))
const bytesBetween = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof({ arbitrary: fc.uint8Array({ minLength: min, maxLength: Math.min(max, min + 40) }), weight: 4 }, { arbitrary: filled(min, max), weight: 1 })

const blockSpec = fc.record({ piece: u32, offset: u32, length: u32 })

const peerArb: fc.Arbitrary<WirePeer> = fc.record({
  id: bytesBetween(1, PEERS_MAX_ID_LENGTH),
  addrs: fc.array(bytesBetween(1, PEERS_MAX_ADDR_LENGTH), { maxLength: PEERS_MAX_ADDRS })
})
/** every cap reached at once: the biggest peers message there is */
const maxPeers: WirePeer[] = Array.from({ length: PEERS_MAX_COUNT }, (_, p) => ({
  id: new Uint8Array(PEERS_MAX_ID_LENGTH).fill(p),
  addrs: Array.from({ length: PEERS_MAX_ADDRS }, (_, a) => new Uint8Array(PEERS_MAX_ADDR_LENGTH).fill(p + a))
}))
const peersArb: fc.Arbitrary<WirePeer[]> = fc.oneof(
  { arbitrary: fc.array(peerArb, { maxLength: 6 }), weight: 8 },
  { arbitrary: fc.array(peerArb, { minLength: PEERS_MAX_COUNT - 2, maxLength: PEERS_MAX_COUNT }), weight: 1 },
  { arbitrary: fc.constant(maxPeers), weight: 1 }
)

const T = MessageType
/** Any message the encoders can write, every type, with edge values and sizes. */
const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(
  fc.record({ type: fc.constant(T.Handshake), version: fc.integer({ min: 0, max: 255 }), manifest: bytesBetween(1, 128) }),
  fc.record({ type: fc.constant(T.Bitfield), bitfield: fc.oneof({ arbitrary: bytesBetween(0, 300), weight: 6 }, { arbitrary: filled(MAX_FRAME_LENGTH - 100, MAX_FRAME_LENGTH - 1), weight: 1 }) }),
  fc.constantFrom(T.HaveAll, T.HaveNone, T.Interested, T.NotInterested, T.Choke, T.Unchoke, T.KeepAlive).map(type => ({ type }) as WireMessage),
  fc.record({ type: fc.constant(T.Have), piece: u32 }),
  fc.tuple(fc.constantFrom(T.Request, T.Cancel, T.Reject), blockSpec).map(([type, b]) => ({ type, ...b }) as WireMessage),
  fc.record({
    type: fc.constant(T.Piece),
    piece: u32,
    offset: u32,
    data: fc.oneof(bytesBetween(1, MAX_BLOCK_LENGTH), filled(MAX_BLOCK_LENGTH, MAX_BLOCK_LENGTH)).map(d => new Uint8ArrayList(d))
  }),
  fc.record({ type: fc.constant(T.Peers), peers: peersArb })
) as fc.Arbitrary<WireMessage>

/** chunk boundaries and how each chunk is carried */
const splitArb = fc.tuple(fc.array(fc.nat(), { maxLength: 24 }), fc.array(fc.boolean(), { maxLength: 8 }))

/** The ways a byte stream of valid frames gets damaged. */
type Corruption =
  | { kind: 'flip', at: number, xor: number }
  | { kind: 'set', at: number, value: number }
  | { kind: 'truncate', at: number }
  | { kind: 'insert', at: number, bytes: Uint8Array }
  | { kind: 'oversize', at: number, length: number }
  | { kind: 'long-prefix', at: number, extra: number }

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('oversize' as const), at: fc.nat(), length: fc.integer({ min: MAX_FRAME_LENGTH + 1, max: 2 ** 28 }) }),
  fc.record({ kind: fc.constant('long-prefix' as const), at: fc.nat(), extra: fc.integer({ min: 0, max: 4 }) })
)

/** Damage to one frame's length prefix: a lie about its length, or a non-minimal encoding. */
type FrameDamage = { kind: 'relength', frame: number, delta: number } | { kind: 'pad', frame: number }

const frameDamageArb: fc.Arbitrary<FrameDamage> = fc.oneof(
  fc.record({ kind: fc.constant('relength' as const), frame: fc.nat(), delta: fc.integer({ min: -4, max: 4 }).filter(d => d !== 0) }),
  fc.record({ kind: fc.constant('pad' as const), frame: fc.nat() })
)

/** Reads a frame's (minimal) varint prefix: [value, prefix length]. */
function prefixOf (frame: Uint8Array): [number, number] {
  let n = 0
  for (let i = 0; i < frame.byteLength; i++) {
    n += (frame[i] & 0x7f) * 2 ** (7 * i)
    if ((frame[i] & 0x80) === 0) return [n, i + 1]
  }
  throw new Error('no prefix')
}

function damageFrames (frames: Uint8Array[], damage: FrameDamage[]): Uint8Array[] {
  const out = [...frames]
  for (const d of damage) {
    const i = d.frame % out.length
    const [length, size] = prefixOf(out[i])
    const body = out[i].subarray(size)
    const prefix = d.kind === 'relength'
      ? varintOf(Math.max(0, length + d.delta))
      // the same value with one more (zero) continuation byte
      : [...out[i].subarray(0, size - 1), out[i][size - 1] | 0x80, 0x00]
    out[i] = concat([Uint8Array.from(prefix), body])
  }
  return out
}

function corrupt (input: Uint8Array, damage: Corruption[]): Uint8Array {
  let bytes: Uint8Array = input.slice()
  for (const d of damage) {
    const at = d.at % (bytes.byteLength + 1)
    const insert = (extra: Uint8Array): Uint8Array => concat([bytes.subarray(0, at), extra, bytes.subarray(at)])
    switch (d.kind) {
      case 'flip': if (at < bytes.byteLength) bytes[at] ^= d.xor; break
      case 'set': if (at < bytes.byteLength) bytes[at] = d.value; break
      case 'truncate': bytes = bytes.slice(0, at); break
      case 'insert': bytes = insert(d.bytes); break
      case 'oversize': bytes = insert(Uint8Array.from(varintOf(d.length))); break
      // 3 or more continuation bytes: no frame length needs them
      case 'long-prefix': bytes = insert(Uint8Array.from([0x80, 0x80, 0x80, ...new Array<number>(d.extra).fill(0x81), 0x01])); break
    }
  }
  return bytes
}

/**
 * Feeds `chunks` to a fresh decoder. Any error other than InvalidMessageError escapes (and fails
 * the property); an InvalidMessageError is returned with the messages yielded before it.
 */
function feed (chunks: Array<Uint8Array | Uint8ArrayList>): { decoder: WireDecoder, out: WireMessage[], error?: InvalidMessageError } {
  const decoder = new WireDecoder()
  const out: WireMessage[] = []
  try {
    for (const chunk of chunks) for (const msg of decoder.decode(chunk)) out.push(msg)
  } catch (err) {
    if (err instanceof InvalidMessageError) return { decoder, out, error: err }
    throw err
  }
  return { decoder, out }
}

/** The robustness property for any input bytes, in any chunking. */
function checkRobust (input: Uint8Array, chunks: Array<Uint8Array | Uint8ArrayList>): 'rejected' | 'truncated' | 'clean' {
  const { decoder, out, error } = feed(chunks)
  for (const msg of out) expectWellFormed(msg)
  // what was accepted is exactly what the encoders write for it: one encoding per message
  const accepted = concat(out.map(encode))
  expect(Buffer.from(input.subarray(0, accepted.byteLength)).equals(accepted)).toBe(true)
  if (error != null) {
    expect(error.name).toBe('InvalidMessageError')
    return 'rejected'
  }
  expect(decoder.pending).toBe(input.byteLength - accepted.byteLength)
  let endError: unknown
  try { decoder.end() } catch (err) { endError = err }
  if (decoder.pending > 0) expect(endError).toBeInstanceOf(TruncatedFrameError)
  else expect(endError).toBeUndefined()
  return decoder.pending > 0 ? 'truncated' : 'clean'
}

// --- properties -------------------------------------------------------------------------------

describe('wire codec properties: round trip', () => {
  it('any sequence of valid messages survives encode → decode in any chunking', () => {
    fc.assert(fc.property(fc.array(messageArb, { minLength: 1, maxLength: 8 }), splitArb, (msgs, [cuts, asList]) => {
      const bytes = concat(msgs.map(encode))
      const { decoder, out, error } = feed(split(bytes, cuts, asList))
      expect(error).toBeUndefined()
      expect(out.map(plain)).toEqual(msgs.map(plain))
      expect(decoder.pending).toBe(0)
      decoder.end()
    }), { seed: SEED, numRuns: 300 })
  })

  it('a message decodes alike from whole frames and byte by byte', () => {
    // small messages only: byte-by-byte feeding of 128 KiB frames is slow for no gain
    const small = messageArb.filter(m => encode(m).byteLength <= 600)
    fc.assert(fc.property(small, (msg) => {
      const bytes = encode(msg)
      const { out } = feed(Array.from(bytes, b => Uint8Array.of(b)))
      expect(out.map(plain)).toEqual([plain(msg)])
    }), { seed: SEED + 1, numRuns: 200 })
  })
})

describe('wire codec properties: hostile input', () => {
  it('arbitrary bytes either decode to well-formed messages or throw InvalidMessageError', () => {
    const seen = { rejected: 0, truncated: 0, clean: 0 }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 96 }), splitArb, (input, [cuts, asList]) => {
      seen[checkRobust(input, split(input, cuts, asList))]++
    }), { seed: SEED + 2, numRuns: 1000 })
    // every outcome was reached
    expect(Object.values(seen).every(n => n > 20)).toBe(true)
  })

  it('corrupted valid traffic (flips, truncation, inserts, oversized prefixes) fails only with InvalidMessageError', () => {
    // small frames, so that damage often lands in a header
    const small = messageArb.filter(m => encode(m).byteLength <= 300)
    const seen = { rejected: 0, truncated: 0, clean: 0 }
    fc.assert(fc.property(
      fc.array(small, { minLength: 1, maxLength: 6 }), fc.array(frameDamageArb, { maxLength: 2 }), fc.array(corruptionArb, { maxLength: 3 }), splitArb,
      (msgs, frameDamage, damage, [cuts, asList]) => {
        const input = corrupt(concat(damageFrames(msgs.map(encode), frameDamage)), damage)
        seen[checkRobust(input, split(input, cuts, asList))]++
      }), { seed: SEED + 3, numRuns: 1500 })
    expect(Object.values(seen).every(n => n > 20)).toBe(true)
  })

  it('a peers frame past any cap is rejected, and encodePeers refuses to write it', () => {
    const small = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: 1, maxLength: max })
    const tinyPeer = fc.record({ id: small(4), addrs: fc.array(small(4), { maxLength: 2 }) })
    /** peers with one cap broken: count, id length, addr count or addr length */
    const overCap: fc.Arbitrary<WirePeer[]> = fc.oneof(
      fc.array(tinyPeer, { minLength: PEERS_MAX_COUNT + 1, maxLength: 255 }),
      fc.integer({ min: PEERS_MAX_ID_LENGTH + 1, max: 255 }).map(n => [{ id: new Uint8Array(n), addrs: [] }]),
      fc.constant<WirePeer[]>([{ id: new Uint8Array(0), addrs: [] }]),
      fc.array(small(4), { minLength: PEERS_MAX_ADDRS + 1, maxLength: 255 }).map(addrs => [{ id: Uint8Array.of(1), addrs }]),
      fc.integer({ min: PEERS_MAX_ADDR_LENGTH + 1, max: 0xffff }).map(n => [{ id: Uint8Array.of(1), addrs: [new Uint8Array(n)] }]),
      fc.constant<WirePeer[]>([{ id: Uint8Array.of(1), addrs: [new Uint8Array(0)] }])
    )
    fc.assert(fc.property(fc.array(tinyPeer, { maxLength: 3 }), overCap, fc.array(tinyPeer, { maxLength: 3 }), (before, bad, after) => {
      const peers = [...before, ...bad, ...after]
      expect(() => encodePeers(peers)).toThrow(InvalidMessageError)
      const frame = rawPeers(peers)
      const { out, error } = feed([frame])
      expect(out).toEqual([])
      expect(error).toBeInstanceOf(InvalidMessageError)
    }), { seed: SEED + 5, numRuns: 300 })
    // and the hand-written encoder agrees with encodePeers within the caps
    fc.assert(fc.property(peersArb, (peers) => {
      expect(hex(rawPeers(peers))).toBe(hex(encodePeers(peers)))
    }), { seed: SEED + 6, numRuns: 100 })
  })

  it('a frame longer than MAX_FRAME_LENGTH is rejected once its prefix is read, before its body', () => {
    /** a minimal varint over the cap, or a prefix of 3+ continuation bytes */
    const prefixArb = fc.oneof(
      fc.integer({ min: MAX_FRAME_LENGTH + 1, max: 2 ** 21 - 1 }).map(n => Uint8Array.from(varintOf(n))),
      fc.constantFrom(MAX_FRAME_LENGTH + 1, 2 ** 21 - 1, 2 ** 21, 2 ** 28, 2 ** 32, Number.MAX_SAFE_INTEGER).map(n => Uint8Array.from(varintOf(n))),
      fc.integer({ min: 2 ** 21, max: 2 ** 35 }).map(n => Uint8Array.from(varintOf(n)))
    )
    fc.assert(fc.property(
      fc.array(messageArb.filter(m => encode(m).byteLength <= 300), { maxLength: 3 }), prefixArb,
      fc.integer({ min: 0, max: 4096 }), splitArb,
      (before, prefix, bodyBytes, [cuts, asList]) => {
        const head = concat(before.map(encode))
        const prefixEnd = head.byteLength + Math.min(prefix.byteLength, 3)
        const input = concat([head, prefix, new Uint8Array(bodyBytes).fill(0xab)])
        const chunks = split(input, cuts, asList)
        const decoder = new WireDecoder()
        const out: WireMessage[] = []
        let fed = 0
        let caught: unknown
        for (const chunk of chunks) {
          fed += chunk.byteLength
          try {
            for (const msg of decoder.decode(chunk)) out.push(msg)
          } catch (err) {
            caught = err
            break
          }
          // once three prefix bytes are in, the frame must already be refused
          expect(fed).toBeLessThan(prefixEnd)
        }
        expect(caught).toBeInstanceOf(InvalidMessageError)
        // the frames before it all came out first
        expect(out.map(plain)).toEqual(before.map(plain))
      }), { seed: SEED + 4, numRuns: 500 })
  })
})
