// Shared by the tracker and tracker-client tests (not a test file itself).
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterEach } from 'vitest'
import { signPeerRecord } from '../../src/discovery/tracker-client.js'
import { createTrackerServer, type TrackerServer, type TrackerServerInit } from '../../tracker/server.js'

export async function makePeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

export interface TestPeer { key: PrivateKey, id: string }

export async function makePeer (): Promise<TestPeer> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

export async function makeCid (text: string): Promise<string> {
  return CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(text))).toString()
}

let seq = 0n
/** Strictly increasing across a test file, so every record is newer than the last. */
export function nextSeq (): bigint {
  return ++seq
}

export function b64url (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/** A signed record as the `record` parameter carries it (base64url). */
export async function recordParam (key: PrivateKey, addrs: string[], s: bigint = nextSeq()): Promise<string> {
  return b64url(await signPeerRecord(key, addrs, s))
}

/** An envelope around arbitrary payload bytes, validly signed by `key` (for hostile payloads). */
export async function sealPayload (key: PrivateKey, payload: Uint8Array, codec: Uint8Array = PeerRecord.CODEC): Promise<Uint8Array> {
  const envelope = await RecordEnvelope.seal({ domain: PeerRecord.DOMAIN, codec, marshal: () => payload, equals: () => false }, key)
  return envelope.marshal()
}

function varint (n: bigint): number[] {
  const out: number[] = []
  let v = n
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return out
}

function field (no: number, bytes: Uint8Array): number[] {
  return [...varint(BigInt(no << 3 | 2)), ...varint(BigInt(bytes.byteLength)), ...bytes]
}

/**
 * PeerRecord protobuf by hand (peer_id = 1, seq = 2, addresses = 3 { multiaddr = 1 }), so a test
 * can put bytes in it that the library would never produce.
 */
export function rawPeerRecord (peerIdBytes: Uint8Array, seqNumber: bigint, addrs: Uint8Array[]): Uint8Array {
  const out = [...field(1, peerIdBytes), ...varint(BigInt(2 << 3 | 0)), ...varint(seqNumber)]
  for (const a of addrs) out.push(...field(3, new Uint8Array(field(1, a))))
  return new Uint8Array(out)
}

export interface AnnounceQuery {
  manifest?: string
  peer?: string
  /** base64url envelope */
  record?: string
  /** obsolete: the tracker refuses it */
  addr?: string[]
  event?: string
  uploaded?: string | number
  downloaded?: string | number
  left?: string | number
  numwant?: string | number
}

/** Query string for /announce; fields set to undefined are left out. */
export function announceQuery (q: AnnounceQuery): string {
  const p = new URLSearchParams()
  if (q.manifest !== undefined) p.set('manifest', q.manifest)
  if (q.peer !== undefined) p.set('peer', q.peer)
  if (q.record !== undefined) p.set('record', q.record)
  for (const a of q.addr ?? []) p.append('addr', a)
  if (q.event !== undefined) p.set('event', q.event)
  if (q.uploaded !== undefined) p.set('uploaded', String(q.uploaded))
  if (q.downloaded !== undefined) p.set('downloaded', String(q.downloaded))
  if (q.left !== undefined) p.set('left', String(q.left))
  if (q.numwant !== undefined) p.set('numwant', String(q.numwant))
  return p.toString()
}

/** The union of the tracker's JSON answers, for reading them in tests. */
export interface TrackerBody {
  error?: string
  interval?: number
  minInterval?: number
  complete?: number
  incomplete?: number
  peers?: Array<{ peerId: string, multiaddrs: string[] }>
  files?: Record<string, { complete: number, incomplete: number, downloaded: number }>
}

export async function getJson (url: string, init?: RequestInit): Promise<{ status: number, body: TrackerBody, contentType: string | null }> {
  const res = await fetch(url, init)
  const text = await res.text()
  let body: TrackerBody
  try {
    body = JSON.parse(text) as TrackerBody
  } catch {
    body = { error: `not JSON: ${text.slice(0, 100)}` }
  }
  return { status: res.status, body, contentType: res.headers.get('content-type') }
}

/**
 * GET from a chosen loopback source address (fetch cannot bind one): how tests play a second
 * host, e.g. an attacker on 127.0.0.2 beside honest peers on 127.0.0.1.
 */
export async function getJsonFrom (url: string, localAddress: string, timeoutMs = 10_000): Promise<{ status: number, body: TrackerBody }> {
  const { request } = await import('node:http')
  return await new Promise((resolve, reject) => {
    // agent false: a fresh socket, so the tracker sees exactly this source address
    const req = request(url, { localAddress, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: TrackerBody
        try {
          body = JSON.parse(text) as TrackerBody
        } catch {
          body = { error: `not JSON: ${text.slice(0, 100)}` }
        }
        resolve({ status: res.statusCode ?? 0, body })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer in ${timeoutMs} ms`)) })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Real trackers on 127.0.0.1:0 for a test file, each stopped after its test. `start` returns the
 * tracker and its base URL (`http://127.0.0.1:PORT`).
 */
export function useTrackers (): (init?: TrackerServerInit) => Promise<{ tracker: TrackerServer, base: string }> {
  const servers: TrackerServer[] = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(async s => { await s.stop() }))
  })
  return async (init = {}) => {
    const tracker = createTrackerServer({ port: 0, log: () => {}, ...init })
    servers.push(tracker)
    await tracker.start()
    return { tracker, base: `http://127.0.0.1:${tracker.port}` }
  }
}

/** Closes a plain HTTP server a test started, its open connections too. */
export async function closeServer (s: import('node:http').Server): Promise<void> {
  await new Promise<void>(resolve => {
    s.close(() => { resolve() })
    s.closeAllConnections()
  })
}
