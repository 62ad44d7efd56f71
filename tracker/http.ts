/**
 * HTTP edge of the tracker: parse and validate query strings, route, write JSON. Everything a
 * client sends is untrusted; only BadRequestError messages are shown to clients.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { handleAnnounce, handleScrape } from './logic.js'
import type { AnnounceRequest, LogicOptions, TrackerEvent } from './logic.js'
import type { PeerStore } from './store.js'

export const MAX_ADDRS = 16
export const MAX_ADDR_LENGTH = 256
export const DEFAULT_NUMWANT = 50
export const MAX_NUMWANT = 200
export const MAX_SCRAPE_MANIFESTS = 100
/** request-target length; a valid announce is far shorter (16 × 256-char addrs ≈ 5 KiB) */
export const MAX_URL_LENGTH = 8192

const P2P_CODE = 421

/** A client mistake; its message is safe to send back. */
export class BadRequestError extends Error {
  override name = 'BadRequestError'
  readonly status: number
  constructor (message: string, status = 400) {
    super(message)
    this.status = status
  }
}

function one (params: URLSearchParams, name: string): string | undefined {
  const all = params.getAll(name)
  if (all.length > 1) throw new BadRequestError(`duplicate ${name}`)
  return all[0]
}

function required (params: URLSearchParams, name: string): string {
  const value = one(params, name)
  if (value === undefined || value === '') throw new BadRequestError(`missing ${name}`)
  return value
}

function parseCount (params: URLSearchParams, name: string): number {
  return toCount(name, required(params, name))
}

function toCount (name: string, text: string): number {
  // digits only: Number() would accept '1e3', ' 1', '0x10', '-0'
  const n = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n)) throw new BadRequestError(`${name} must be a non-negative integer`)
  return n
}

/** Normalized CIDv1 string, so the same manifest in another base lands in the same swarm. */
export function parseManifest (text: string): string {
  let cid: CID
  try {
    cid = CID.parse(text)
  } catch {
    throw new BadRequestError('manifest is not a CID')
  }
  if (cid.version !== 1) throw new BadRequestError('manifest must be a CIDv1')
  return cid.toString()
}

function parsePeerId (text: string): string {
  try {
    return peerIdFromString(text).toString()
  } catch {
    throw new BadRequestError('peer is not a libp2p peer id')
  }
}

function parseAddr (text: string, peerId: string): string {
  if (text.length > MAX_ADDR_LENGTH) throw new BadRequestError(`addr too long (max ${MAX_ADDR_LENGTH} chars)`)
  let components
  let ma
  try {
    ma = multiaddr(text)
    components = ma.getComponents()
  } catch {
    throw new BadRequestError('addr is not a multiaddr')
  }
  if (components.length === 0) throw new BadRequestError('addr is not a multiaddr')
  const last = components[components.length - 1]
  if (last.code === P2P_CODE) {
    // answers carry bare addresses; a /p2p suffix naming someone else is a lie
    if (last.value !== peerId) throw new BadRequestError('addr /p2p id differs from peer')
    ma = ma.decapsulateCode(P2P_CODE)
    if (ma.getComponents().length === 0) throw new BadRequestError('addr is not a multiaddr')
  }
  return ma.toString()
}

function parseEvent (text: string | undefined): TrackerEvent | undefined {
  switch (text) {
    case undefined:
    case '':
    case 'empty':
      return undefined
    case 'started':
    case 'completed':
    case 'stopped':
      return text
    default:
      throw new BadRequestError('unknown event')
  }
}

export function parseAnnounce (params: URLSearchParams): AnnounceRequest {
  const manifest = parseManifest(required(params, 'manifest'))
  const peerId = parsePeerId(required(params, 'peer'))
  const addrTexts = params.getAll('addr')
  if (addrTexts.length > MAX_ADDRS) throw new BadRequestError(`too many addrs (max ${MAX_ADDRS})`)
  const multiaddrs = [...new Set(addrTexts.map(a => parseAddr(a, peerId)))]
  const event = parseEvent(one(params, 'event'))
  const uploaded = parseCount(params, 'uploaded')
  const downloaded = parseCount(params, 'downloaded')
  const left = parseCount(params, 'left')
  const numwantText = one(params, 'numwant')
  const numwant = numwantText === undefined || numwantText === ''
    ? DEFAULT_NUMWANT
    : Math.min(toCount('numwant', numwantText), MAX_NUMWANT) // capped, not rejected
  return { manifest, peerId, multiaddrs, event, uploaded, downloaded, left, numwant }
}

export function parseScrape (params: URLSearchParams): Array<{ key: string, manifest: string }> {
  const texts = params.getAll('manifest')
  if (texts.length > MAX_SCRAPE_MANIFESTS) throw new BadRequestError(`too many manifests (max ${MAX_SCRAPE_MANIFESTS})`)
  return texts.map(t => ({ key: t, manifest: parseManifest(t) }))
}

export interface HandlerContext {
  store: PeerStore
  logic: LogicOptions
  now: () => number
  log: (line: string) => void
}

export function writeJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers
  })
  res.end(text)
}

/** Never throws: every failure becomes a JSON error answer. */
export function handleRequest (req: IncomingMessage, res: ServerResponse, ctx: HandlerContext): void {
  // a GET body is meaningless; drain it so the connection can be reused
  req.resume()
  try {
    route(req, res, ctx)
  } catch (err) {
    if (err instanceof BadRequestError) {
      writeJsonSafe(res, err.status, { error: err.message }, err.status === 405 ? { allow: 'GET' } : {})
    } else {
      ctx.log(`tracker: internal error on ${req.method ?? '?'} ${(req.url ?? '').slice(0, 200)}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      writeJsonSafe(res, 500, { error: 'internal error' })
    }
  }
}

function writeJsonSafe (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  try {
    if (res.headersSent) {
      res.destroy()
    } else {
      writeJson(res, status, body, headers)
    }
  } catch {
    res.destroy()
  }
}

function route (req: IncomingMessage, res: ServerResponse, ctx: HandlerContext): void {
  const target = req.url ?? '/'
  if (target.length > MAX_URL_LENGTH) throw new BadRequestError('request too long')
  let url: URL
  try {
    url = new URL(target, 'http://tracker.invalid')
  } catch {
    throw new BadRequestError('bad request target')
  }
  const path = url.pathname
  if (path !== '/announce' && path !== '/scrape') throw new BadRequestError('not found', 404)
  if (req.method !== 'GET') throw new BadRequestError('method not allowed', 405)

  if (path === '/announce') {
    const request = parseAnnounce(url.searchParams)
    writeJson(res, 200, handleAnnounce(ctx.store, request, ctx.now(), ctx.logic))
  } else {
    const manifests = parseScrape(url.searchParams)
    writeJson(res, 200, handleScrape(ctx.store, manifests, ctx.now(), ctx.logic.peerTtl))
  }
}
