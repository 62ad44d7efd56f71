// Shared by the tracker and tracker-client tests (not a test file itself).
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

export async function makePeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

export async function makeCid (text: string): Promise<string> {
  return CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(text))).toString()
}

export interface AnnounceQuery {
  manifest?: string
  peer?: string
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
