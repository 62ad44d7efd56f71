/**
 * HTTP edge of the tracker: parse and validate query strings, route, write JSON. Everything a
 * client sends is untrusted; only BadRequestError and TrackerFullError messages are shown to
 * clients.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { normalizeIp } from './addresses.js'
import type { ManifestFilter } from './allow.js'
import { BadRequestError, NotTrackedError, QuotaExceededError, StoreUnavailableError, TrackerFullError } from './errors.js'
import { handleAnnounce, handleScrape } from './logic.js'
import type { PeerAddress, AnnounceRequest, AnnounceResponse, LogicOptions, TrackerEvent } from './logic.js'
import type { Endpoint, TrackerObserver } from './observe.js'
import { decodeRecordParam, openPeerRecord } from './record.js'
import type { PeerStore } from './store.js'

export const DEFAULT_NUMWANT = 50
export const MAX_NUMWANT = 200
export const MAX_SCRAPE_MANIFESTS = 100
/** request-target length; a valid announce is far shorter (a 4 KiB record is 5.4 KiB of base64) */
export const MAX_URL_LENGTH = 8192

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

function parsePeerId (text: string): PeerId {
  let peerId: PeerId
  try {
    peerId = peerIdFromString(text)
  } catch {
    throw new BadRequestError('peer is not a libp2p peer id')
  }
  // verifying a secp256k1 signature costs ~3 ms in JS (Ed25519 ~0.2 ms): a cheap way to load us
  if (peerId.type === 'secp256k1') throw new BadRequestError('secp256k1 peer ids are not accepted (use Ed25519 or RSA)')
  return peerId
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

/**
 * Everything but the signature first, so a bad request costs no verification. `ip` is where the
 * announce came from (see clientIp).
 */
export async function parseAnnounce (params: URLSearchParams, ip: string, allow?: ManifestFilter): Promise<AnnounceRequest> {
  if (params.has('addr')) throw new BadRequestError('addresses must come in a signed peer record')
  const manifest = parseManifest(required(params, 'manifest'))
  // before the signature: a manifest not served here costs no verification
  if (allow != null && !allow.allows(manifest)) throw new NotTrackedError()
  const peerId = parsePeerId(required(params, 'peer'))
  const event = parseEvent(one(params, 'event'))
  const uploaded = parseCount(params, 'uploaded')
  const downloaded = parseCount(params, 'downloaded')
  const left = parseCount(params, 'left')
  const numwantText = one(params, 'numwant')
  const numwant = numwantText === undefined || numwantText === ''
    ? DEFAULT_NUMWANT
    : Math.min(toCount('numwant', numwantText), MAX_NUMWANT) // capped, not rejected
  // required for event=stopped too: otherwise anyone could remove anyone
  const bytes = decodeRecordParam(required(params, 'record'))
  const { seq, multiaddrs } = await openPeerRecord(bytes, peerId)
  return { manifest, peerId: peerId.toString(), multiaddrs, ip, seq, event, uploaded, downloaded, left, numwant }
}

export function parseScrape (params: URLSearchParams, allow?: ManifestFilter): Array<{ key: string, manifest: string }> {
  const texts = params.getAll('manifest')
  // no full scrape: its answer grows with the tracker, the request does not
  if (texts.length === 0) throw new BadRequestError('missing manifest (scrape answers only the manifests asked for)')
  if (texts.length > MAX_SCRAPE_MANIFESTS) throw new BadRequestError(`too many manifests (max ${MAX_SCRAPE_MANIFESTS})`)
  const all = texts.map(t => ({ key: t, manifest: parseManifest(t) }))
  if (allow == null) return all
  // a mixed scrape answers for the tracked manifests and leaves the others out (absent from
  // `files`, as a tracker does for what it does not serve); only nothing tracked at all is a 403
  const tracked = all.filter(w => allow.allows(w.manifest))
  if (tracked.length === 0) throw new NotTrackedError()
  return tracked
}

export interface HandlerContext {
  store: PeerStore
  logic: LogicOptions
  now: () => number
  log: (line: string) => void
  /** normalized IPs of reverse proxies whose X-Forwarded-For is believed; usually empty */
  trustedProxies: ReadonlySet<string>
  /** only these manifests are served (403 for others); default all */
  allow?: ManifestFilter
  /** counts, /stats, / and /metrics (absent: those paths answer 404) */
  observer?: TrackerObserver
}

/**
 * The announcer's IP: the socket's peer, unless that is a trusted proxy, then the last address
 * that proxy appended to X-Forwarded-For (anything before it the client could have written).
 */
export function clientIp (req: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  const socketIp = normalizeIp(req.socket.remoteAddress)
  if (!trustedProxies.has(socketIp)) return socketIp
  const header = req.headers['x-forwarded-for']
  const text = Array.isArray(header) ? header.join(',') : header
  if (text === undefined) return socketIp
  const last = text.split(',').pop()?.trim()
  const ip = normalizeIp(last)
  if (ip === '') throw new BadRequestError('bad X-Forwarded-For from the proxy')
  return ip
}

/** JSON text of each shown peer, made once per announce of that peer rather than per answer. */
const peerJson = new WeakMap<PeerAddress, string>()

/**
 * Exactly JSON.stringify(answer), but the peers (most of an answer: up to 200 of them) come from
 * the cache: serializing them was a sixth of an announce's event-loop time.
 */
export function announceJson (answer: AnnounceResponse): string {
  const peers = answer.peers.map(p => {
    let text = peerJson.get(p)
    if (text === undefined) {
      text = JSON.stringify(p)
      peerJson.set(p, text)
    }
    return text
  })
  const { interval, minInterval, complete, incomplete } = answer
  const relays = answer.relays != null ? `,"relays":${JSON.stringify(answer.relays)}` : ''
  return `{"interval":${JSON.stringify(interval)},"minInterval":${JSON.stringify(minInterval)},"complete":${complete},"incomplete":${incomplete},"peers":[${peers.join(',')}]${relays}}`
}

function writeJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  writeJsonText(res, status, JSON.stringify(body), headers)
}

function writeJsonText (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers
  })
  res.end(text)
}

/** Never throws nor rejects: every failure becomes a JSON error answer. */
export function handleRequest (req: IncomingMessage, res: ServerResponse, ctx: HandlerContext): void {
  // a GET body is meaningless; drain it so the connection can be reused
  req.resume()
  const started = performance.now()
  const seen: { endpoint: Endpoint } = { endpoint: 'other' }
  route(req, res, ctx, seen).then(() => {
    observe(ctx, seen.endpoint, started)
  }, (err: unknown) => {
    observe(ctx, seen.endpoint, started, err)
    if (err instanceof BadRequestError) {
      writeJsonSafe(res, err.status, { error: err.message }, err.status === 405 ? { allow: 'GET' } : {})
    } else if (err instanceof TrackerFullError || err instanceof QuotaExceededError || err instanceof StoreUnavailableError) {
      writeJsonSafe(res, err.status, { error: err.message }, { 'retry-after': String(ctx.logic.interval) })
    } else {
      try {
        ctx.log(`tracker: internal error on ${req.method ?? '?'} ${(req.url ?? '').slice(0, 200)}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      } catch {
        // a failing logger must not become an unhandled rejection
      }
      writeJsonSafe(res, 500, { error: 'internal error' })
    }
  })
}

function observe (ctx: HandlerContext, endpoint: Endpoint, started: number, err?: unknown): void {
  try {
    ctx.observer?.record(endpoint, (performance.now() - started) / 1000, err)
  } catch {
    // counting must never cost the answer
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

/** the pages for people (GET /) and for machines (/stats, /metrics) */
const PAGES = new Set(['/', '/stats', '/metrics'])

async function servePage (path: string, res: ServerResponse, observer: TrackerObserver): Promise<void> {
  if (path === '/stats') {
    writeJson(res, 200, await observer.stats(), { 'x-content-type-options': 'nosniff' })
  } else if (path === '/metrics') {
    const text = await observer.registry.metrics()
    writeText(res, text, observer.registry.contentType)
  } else {
    writeText(res, await observer.page(), 'text/html; charset=utf-8', {
      // no script, no frames, no forms: the page only shows numbers and CIDs
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      'referrer-policy': 'no-referrer'
    })
  }
}

function writeText (res: ServerResponse, text: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers
  })
  res.end(text)
}

async function route (req: IncomingMessage, res: ServerResponse, ctx: HandlerContext, seen: { endpoint: Endpoint }): Promise<void> {
  const target = req.url ?? '/'
  if (target.length > MAX_URL_LENGTH) throw new BadRequestError('request too long')
  let url: URL
  try {
    url = new URL(target, 'http://tracker.invalid')
  } catch {
    throw new BadRequestError('bad request target')
  }
  const path = url.pathname
  // exactly as written: '//stats' (a URL with host "stats") or '/%73tats' are not the pages
  if (ctx.observer != null && PAGES.has(path) && target.split('?', 1)[0] === path) {
    if (req.method !== 'GET') throw new BadRequestError('method not allowed', 405)
    await servePage(path, res, ctx.observer)
    return
  }
  if (path !== '/announce' && path !== '/scrape') throw new BadRequestError('not found', 404)
  if (req.method !== 'GET') throw new BadRequestError('method not allowed', 405)
  seen.endpoint = path === '/announce' ? 'announce' : 'scrape'

  if (path === '/announce') {
    const request = await parseAnnounce(url.searchParams, clientIp(req, ctx.trustedProxies), ctx.allow)
    // the store checks the seq and updates in one atomic step: two copies of one record cannot both pass
    writeJsonText(res, 200, announceJson(await handleAnnounce(ctx.store, request, ctx.now(), ctx.logic)))
  } else {
    const manifests = parseScrape(url.searchParams, ctx.allow)
    writeJson(res, 200, await handleScrape(ctx.store, manifests, ctx.now(), ctx.logic.peerTtl))
  }
}
