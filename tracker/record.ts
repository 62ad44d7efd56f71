/**
 * Signed announces: a peer's addresses come in a libp2p signed peer record (RecordEnvelope +
 * PeerRecord, domain PeerRecord.DOMAIN), so nobody can list another peer's id or replay its old
 * announce. A signature does not make an address the signer's: which addresses are listed is
 * addresses.ts's call. Checks run cheapest first; the signature check only runs for a
 * well-formed envelope whose key is the peer's.
 *
 * The signature check is the largest single cost of an announce (Ed25519: 0.2–0.37 ms of CPU on
 * the 2-vCPU VM bench/tracker-load.ts ran on, some 40 % of the tracker's CPU per announce). For
 * Ed25519 it runs in libuv's thread pool (node:crypto's callback form), off the event loop and
 * over several cores; other key types go through libp2p.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as varint from 'uint8-varint'
import { BadRequestError } from './errors.js'
import { splitPeerAddr } from '../src/net/addr.js'
import { MAX_ANNOUNCE_ADDRS } from '../src/discovery/types.js'

/** marshalled envelope; an Ed25519 record with 16 long addresses is well under this */
export const MAX_RECORD_BYTES = 4096
export const MAX_ADDRS = MAX_ANNOUNCE_ADDRS
export const MAX_ADDR_LENGTH = 256

/** base64url length of MAX_RECORD_BYTES (padded), so oversize text is refused before decoding */
const MAX_RECORD_TEXT = Math.ceil(MAX_RECORD_BYTES / 3) * 4

export interface OpenedRecord {
  /** the record's seqNumber: must grow from one accepted announce to the next */
  seq: bigint
  /** normalized, deduplicated, without /p2p suffix */
  multiaddrs: string[]
}

/** The `record` query parameter: base64url (padding optional), at most MAX_RECORD_BYTES. */
export function decodeRecordParam (text: string): Uint8Array {
  if (text.length > MAX_RECORD_TEXT) throw new BadRequestError(`record too large (max ${MAX_RECORD_BYTES} bytes)`)
  // Buffer.from(…, 'base64url') silently skips bad characters: check the alphabet first
  const body = text.replace(/={1,2}$/, '')
  if (!/^[A-Za-z0-9_-]+$/.test(body) || body.length % 4 === 1) throw new BadRequestError('record is not base64url')
  const bytes = Buffer.from(body, 'base64url')
  if (bytes.byteLength > MAX_RECORD_BYTES) throw new BadRequestError(`record too large (max ${MAX_RECORD_BYTES} bytes)`)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * RecordEnvelope.openAndCertify split in two (decode, then verify) so that the cheap key check
 * runs before the signature check; then the PeerRecord must name `peerId` and carry acceptable
 * addresses.
 */
export async function openPeerRecord (bytes: Uint8Array, peerId: PeerId): Promise<OpenedRecord> {
  let envelope: RecordEnvelope
  try {
    envelope = RecordEnvelope.createFromProtobuf(bytes)
  } catch {
    throw new BadRequestError('record is not a signed envelope')
  }
  if (!sameBytes(envelope.payloadType, PeerRecord.CODEC)) throw new BadRequestError('record is not a peer record')
  if (!signedBy(envelope, peerId)) throw new BadRequestError('record is not signed by the peer\'s key')
  let valid = false
  try {
    valid = await verifyEnvelope(envelope)
  } catch {
    // a malformed signature (wrong length) throws instead of returning false
  }
  if (!valid) throw new BadRequestError('record signature is invalid')

  let record: PeerRecord
  try {
    record = PeerRecord.createFromProtobuf(envelope.payload)
  } catch {
    throw new BadRequestError('record is not a valid peer record (bad peer id or multiaddr)')
  }
  if (!record.peerId.equals(peerId)) throw new BadRequestError('record peer id differs from peer')
  if (record.multiaddrs.length > MAX_ADDRS) throw new BadRequestError(`too many addrs in record (max ${MAX_ADDRS})`)
  const id = peerId.toString()
  const multiaddrs = [...new Set(record.multiaddrs.map(ma => checkAddr(ma, id)))]
  return { seq: record.seqNumber, multiaddrs }
}

/** The envelope's key is the peer's: compared directly when the id embeds the key (Ed25519). */
function signedBy (envelope: RecordEnvelope, peerId: PeerId): boolean {
  if (peerId.publicKey != null) return peerId.publicKey.equals(envelope.publicKey)
  try {
    // RSA ids are a hash of the key
    return peerIdFromPublicKey(envelope.publicKey).equals(peerId)
  } catch {
    return false // a key type libp2p cannot make an id of
  }
}

const DOMAIN = new TextEncoder().encode(PeerRecord.DOMAIN)

/** Same answer as envelope.validate(PeerRecord.DOMAIN), Ed25519 off the event loop. */
export async function verifyEnvelope (envelope: RecordEnvelope): Promise<boolean> {
  const key = envelope.publicKey
  if (key.type !== 'Ed25519') return await envelope.validate(PeerRecord.DOMAIN)
  // what libp2p signs: varint-prefixed domain, payload type and payload (see RecordEnvelope.seal)
  const { payloadType, payload } = envelope
  const data = Buffer.concat([
    varint.encode(DOMAIN.byteLength), DOMAIN,
    varint.encode(payloadType.byteLength), payloadType,
    varint.encode(payload.byteLength), payload
  ])
  const publicKey = ed25519KeyObject(key.raw)
  return await new Promise((resolve, reject) => {
    cryptoVerify(null, data, publicKey, envelope.signature, (err, ok) => {
      if (err != null) reject(err)
      else resolve(ok)
    })
  })
}

/** peers announce again and again: importing their key once saves ~10 µs of event loop each time */
const keyObjects = new Map<string, KeyObject>()
const MAX_KEY_OBJECTS = 4096

function ed25519KeyObject (raw: Uint8Array): KeyObject {
  const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url')
  let key = keyObjects.get(x)
  if (key == null) {
    key = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x } })
    // bounded: the oldest import goes first
    if (keyObjects.size >= MAX_KEY_OBJECTS) keyObjects.delete(keyObjects.keys().next().value as string)
    keyObjects.set(x, key)
  }
  return key
}

/** Text form without /p2p suffix; a /p2p suffix naming someone else is a lie. */
function checkAddr (ma: Multiaddr, peerId: string): string {
  let text: string
  try {
    text = ma.toString()
    // binary values can hold what text cannot (a dns name with '/'): peers get the text, so it
    // must mean exactly what was signed
    if (!multiaddr(text).equals(ma)) throw new Error('does not round-trip')
  } catch {
    throw new BadRequestError('record addr is not a multiaddr')
  }
  if (text.length > MAX_ADDR_LENGTH) throw new BadRequestError(`record addr too long (max ${MAX_ADDR_LENGTH} chars)`)
  const components = ma.getComponents()
  if (components.length === 0) throw new BadRequestError('record addr is not a multiaddr')
  const split = splitPeerAddr(ma)
  if (split.peerId !== undefined) {
    if (split.peerId !== peerId) throw new BadRequestError('record addr /p2p id differs from peer')
    if (split.bare.getComponents().length === 0) throw new BadRequestError('record addr is not a multiaddr')
    return split.bare.toString()
  }
  return text
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
