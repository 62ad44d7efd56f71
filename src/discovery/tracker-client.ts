/**
 * Client side of the tracker HTTP protocol (docs/INTERFACES.md): one-shot announce/scrape, and
 * TrackerAnnouncer, which keeps a peer registered and reports the peers the tracker hands out.
 * Announced addresses travel in a libp2p signed peer record, so the tracker can tell that they
 * come from the peer itself. The tracker is untrusted: its answers are size-capped and validated.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { TypedEventEmitter } from 'main-event'
import type { PeerAddress } from './types.js'
import { backoffDelay } from '../backoff.js'
import { MAX_ANNOUNCE_ADDRS } from './types.js'

export class TrackerError extends Error {
  override name = 'TrackerError'
  /** HTTP status when the tracker answered */
  status?: number
  constructor (message: string, options?: { status?: number, cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    if (options?.status !== undefined) this.status = options.status
  }
}

export type AnnounceEvent = 'started' | 'completed' | 'stopped'

export interface AnnounceParams {
  manifest: string
  peerId: string
  /** marshalled RecordEnvelope of a PeerRecord signed by the peer's key (see signPeerRecord) */
  record: Uint8Array
  event?: AnnounceEvent
  uploaded: number
  downloaded: number
  left: number
  numwant?: number
}

export interface AnnounceResult {
  /** seconds */
  interval: number
  /** seconds */
  minInterval?: number
  complete: number
  incomplete: number
  peers: PeerAddress[]
}

export interface TrackerRequestOptions {
  signal?: AbortSignal
  /** ms, default 10_000 */
  timeout?: number
}

export const DEFAULT_TIMEOUT = 10_000
/** an honest answer with 200 peers × 16 addresses is well under this */
const MAX_ANSWER_BYTES = 1024 * 1024
/** as fetch: the statuses whose Location is followed, and how many times at most */
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 5

export async function announce (announceUrl: string, params: AnnounceParams, options: TrackerRequestOptions = {}): Promise<AnnounceResult> {
  const url = parseUrl(announceUrl)
  const q = url.searchParams
  q.set('manifest', params.manifest)
  q.set('peer', params.peerId)
  q.set('record', Buffer.from(params.record.buffer, params.record.byteOffset, params.record.byteLength).toString('base64url'))
  if (params.event !== undefined) q.set('event', params.event)
  q.set('uploaded', String(params.uploaded))
  q.set('downloaded', String(params.downloaded))
  q.set('left', String(params.left))
  if (params.numwant !== undefined) q.set('numwant', String(params.numwant))
  const body = await getJson(url, options)
  return parseAnnounceAnswer(body)
}

export { MAX_ANNOUNCE_ADDRS }

/**
 * A PeerRecord of `multiaddrs` with `seq`, sealed in a RecordEnvelope signed by `privateKey`:
 * the marshalled bytes, as the `record` parameter of an announce carries them.
 */
export async function signPeerRecord (privateKey: PrivateKey, multiaddrs: string[], seq: bigint): Promise<Uint8Array> {
  const record = new PeerRecord({ peerId: peerIdFromPrivateKey(privateKey), multiaddrs: multiaddrs.map(a => multiaddr(a)), seqNumber: seq })
  const envelope = await RecordEnvelope.seal(record, privateKey)
  return envelope.marshal()
}

let lastSeq = 0n

/**
 * Microseconds since the epoch, but strictly above the previous value in this process: the
 * tracker accepts a record only with a seq above the last one it took from this peer, and two
 * announces may be signed in the same millisecond (completed, then stopped). Time-based, so a
 * restarted process continues above its former self (unless the clock stepped back).
 */
export function nextRecordSeq (): bigint {
  const now = BigInt(Date.now()) * 1000n
  lastSeq = now > lastSeq ? now : lastSeq + 1n
  return lastSeq
}

export async function scrape (announceUrl: string, manifests: string[], options: TrackerRequestOptions = {}): Promise<Record<string, { complete: number, incomplete: number, downloaded: number }>> {
  const url = parseUrl(announceUrl)
  // BEP 48: the scrape URL is the announce URL with "announce" in the last segment -> "scrape"
  const slash = url.pathname.lastIndexOf('/')
  const last = url.pathname.slice(slash + 1)
  if (!last.startsWith('announce')) throw new TrackerError('tracker does not support scrape (announce URL does not end in /announce)')
  url.pathname = url.pathname.slice(0, slash + 1) + 'scrape' + last.slice('announce'.length)
  for (const m of manifests) url.searchParams.append('manifest', m)
  const body = await getJson(url, options)
  if (!isObject(body) || !isObject(body.files)) throw new TrackerError('bad scrape answer: no files object')
  const out = new Map<string, { complete: number, incomplete: number, downloaded: number }>()
  for (const [key, value] of Object.entries(body.files)) {
    if (!isObject(value)) continue
    const complete = count(value.complete)
    const incomplete = count(value.incomplete)
    const downloaded = count(value.downloaded)
    if (complete === undefined || incomplete === undefined || downloaded === undefined) continue
    out.set(key, { complete, incomplete, downloaded })
  }
  // fromEntries defines own properties: a "__proto__" key from the tracker stays plain data
  return Object.fromEntries(out)
}

function parseUrl (text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TrackerError(`invalid tracker URL: ${text}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TrackerError(`unsupported tracker URL scheme: ${url.protocol}`)
  return url
}

async function getJson (url: URL, options: TrackerRequestOptions): Promise<unknown> {
  const timeout = options.timeout ?? DEFAULT_TIMEOUT
  const signals = [AbortSignal.timeout(timeout)]
  if (options.signal != null) signals.push(options.signal)
  const signal = AbortSignal.any(signals)
  let text: string
  let status: number
  try {
    ({ status, text } = await httpGet(url, signal, 0))
  } catch (err) {
    // the caller's own abort is not a tracker failure: pass it through untouched
    if (options.signal?.aborted === true) throw options.signal.reason ?? err
    if (err instanceof TrackerError) throw err
    if (signal.aborted) throw new TrackerError(`tracker timed out after ${timeout} ms`, { cause: err })
    throw new TrackerError(`tracker unreachable: ${describe(err)}`, { cause: err })
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    if (status < 200 || status > 299) throw new TrackerError(`tracker answered HTTP ${status}`, { status })
    throw new TrackerError('tracker answer is not JSON', { status, cause: err })
  }
  if (status < 200 || status > 299) {
    const reason = isObject(body) && typeof body.error === 'string' ? `: ${body.error.slice(0, 200)}` : ''
    throw new TrackerError(`tracker answered HTTP ${status}${reason}`, { status })
  }
  return body
}

/**
 * GET `url` with node:http(s): the status and the body, at most MAX_ANSWER_BYTES, redirects
 * followed (MAX_REDIRECTS). Not fetch: a process's first fetch() loads undici and compiles its
 * HTTP parser to WebAssembly, about 20 ms of CPU more than node:http's first request, and the
 * first announce is on the way to a `get`'s first byte.
 */
async function httpGet (url: URL, signal: AbortSignal, redirects: number): Promise<{ status: number, text: string }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest
    request(url, { signal, headers: { accept: 'application/json' } }, resolve).once('error', reject).end()
  })
  const status = res.statusCode ?? 0
  const location = res.headers.location
  if (REDIRECTS.has(status) && location !== undefined) {
    // not drained: a hostile tracker's redirect may come with an endless body
    res.destroy()
    if (redirects >= MAX_REDIRECTS) throw new TrackerError(`tracker redirected more than ${MAX_REDIRECTS} times`, { status })
    const next = parseUrl(new URL(location, url).href)
    return await httpGet(next, signal, redirects + 1)
  }
  const declared = Number(res.headers['content-length'] ?? '0')
  if (declared > MAX_ANSWER_BYTES) {
    res.destroy()
    throw new TrackerError(`tracker answer too large (${declared} bytes)`, { status })
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > MAX_ANSWER_BYTES) {
      res.destroy()
      throw new TrackerError('tracker answer too large', { status })
    }
    chunks.push(chunk)
  }
  return { status, text: Buffer.concat(chunks).toString('utf8') }
}

function parseAnnounceAnswer (body: unknown): AnnounceResult {
  if (!isObject(body)) throw new TrackerError('bad announce answer: not an object')
  if (typeof body.failure === 'string') throw new TrackerError(`tracker failure: ${body.failure.slice(0, 200)}`)
  const interval = body.interval
  if (typeof interval !== 'number' || !Number.isFinite(interval) || interval <= 0) throw new TrackerError('bad announce answer: no valid interval')
  if (body.peers !== undefined && !Array.isArray(body.peers)) throw new TrackerError('bad announce answer: peers is not a list')
  const peers: PeerAddress[] = []
  const seen = new Set<string>()
  for (const entry of (body.peers ?? []) as unknown[]) {
    const peer = parsePeer(entry)
    // drop malformed entries and duplicates rather than failing the whole answer (our own id,
    // should a tracker send it back, is the peer book's to refuse)
    if (peer == null || seen.has(peer.peerId)) continue
    seen.add(peer.peerId)
    peers.push(peer)
  }
  const result: AnnounceResult = {
    interval,
    complete: count(body.complete) ?? 0,
    incomplete: count(body.incomplete) ?? 0,
    peers
  }
  const minInterval = body.minInterval
  if (typeof minInterval === 'number' && Number.isFinite(minInterval) && minInterval >= 0) result.minInterval = minInterval
  return result
}

function parsePeer (entry: unknown): PeerAddress | undefined {
  if (!isObject(entry) || typeof entry.peerId !== 'string' || !Array.isArray(entry.multiaddrs)) return undefined
  let peerId: string
  try {
    peerId = peerIdFromString(entry.peerId).toString()
  } catch {
    return undefined
  }
  const multiaddrs: string[] = []
  for (const a of entry.multiaddrs as unknown[]) {
    if (typeof a !== 'string' || a.length > 1024) continue
    try {
      const ma = multiaddr(a)
      if (ma.getComponents().length > 0) multiaddrs.push(ma.toString())
    } catch {
      // skip an address we cannot parse; the others may still be dialable
    }
  }
  return multiaddrs.length > 0 ? { peerId, multiaddrs } : undefined
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function count (value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined
}

function describe (err: unknown): string {
  // a socket error (ECONNREFUSED, …) may come wrapped in a chain of `cause`s: report the deepest
  let e: unknown = err
  while (e instanceof Error && e.cause instanceof Error && e.cause.message !== '') e = e.cause
  return e instanceof Error ? e.message : String(e)
}

export interface TrackerAnnouncerInit {
  announceUrl: string
  manifest: string
  /** signs each announce's peer record; the announced peer id is this key's */
  privateKey: PrivateKey
  /** addresses to announce (without /p2p suffix); the first MAX_ANNOUNCE_ADDRS are sent */
  getMultiaddrs: () => string[]
  getTransfer: () => { uploaded: number, downloaded: number, left: number }
  /** peers to ask for in each announce (default: the tracker's choice) */
  getNumwant?: () => number | undefined
  /** per request, default 10_000 ms */
  timeout?: number
  /** 1_000 ms; doubles per consecutive failure … */
  minBackoff?: number
  /** … up to 60_000 ms */
  maxBackoff?: number
  /** one line per state change / failure (not one per retry when still down) */
  log?: (msg: string) => void
}

/** A tracker's count of a swarm's members. */
export interface SwarmCounts {
  /** members that have every piece (the answer's `complete`) */
  seeders: number
  /** members still downloading (the answer's `incomplete`) */
  leechers: number
}

export interface TrackerAnnouncerEvents {
  /** every successful answer */
  peers: CustomEvent<PeerAddress[]>
  /** when reachability changes */
  status: CustomEvent<'ok' | 'down'>
}

/** shorter than the usual timeout: stop() runs on shutdown and must not hang it */
const STOP_TIMEOUT = 2_000
/** bounds on the tracker-chosen interval: not a hammer, and within setTimeout's range */
const MIN_INTERVAL_S = 1
const MAX_INTERVAL_S = 24 * 3600

export class TrackerAnnouncer extends TypedEventEmitter<TrackerAnnouncerEvents> {
  private readonly init: TrackerAnnouncerInit
  private readonly peerId: string
  private readonly timeout: number
  private readonly minBackoff: number
  private readonly maxBackoff: number
  private readonly log: (msg: string) => void
  private _status: 'pending' | 'ok' | 'down' = 'pending'
  private _swarm: SwarmCounts | undefined
  private started = false
  private stopping: Promise<void> | undefined
  private registered = false          // the tracker acknowledged us at least once
  private completedPending = false    // completed() called, not yet acknowledged
  private completedCalled = false
  private failures = 0
  /** the "others, but no address" line was logged */
  private saidUnreachable = false
  private timer: ReturnType<typeof setTimeout> | undefined
  private inFlight: AbortController | undefined

  constructor (init: TrackerAnnouncerInit) {
    super()
    this.init = init
    this.peerId = peerIdFromPrivateKey(init.privateKey).toString()
    this.timeout = init.timeout ?? DEFAULT_TIMEOUT
    this.minBackoff = init.minBackoff ?? 1_000
    this.maxBackoff = Math.max(init.maxBackoff ?? 60_000, this.minBackoff)
    this.log = init.log ?? (() => {})
  }

  get status (): 'pending' | 'ok' | 'down' {
    return this._status
  }

  /**
   * The swarm as the tracker counted it in its latest answer (seeders: `complete`, leechers:
   * `incomplete`; ourselves among them once registered), kept while it is down; undefined
   * until it first answers.
   */
  get swarm (): SwarmCounts | undefined {
    return this._swarm
  }

  /** Announce event=started now, then every `interval` the tracker returns. */
  start (): void {
    if (this.started || this.stopping != null) return
    this.started = true
    void this.tick()
  }

  /** Announce event=completed now (once); retried with the usual backoff until acknowledged. */
  completed (): void {
    if (!this.started || this.stopping != null || this.completedCalled) return
    this.completedCalled = true
    this.completedPending = true
    // if a request is in flight, its completion schedules the completed announce at once
    if (this.inFlight == null) {
      this.clearTimer()
      void this.tick()
    }
  }

  /** Clear timers, abort in-flight, announce event=stopped (2 s timeout). Never throws. */
  async stop (): Promise<void> {
    if (this.stopping == null) this.stopping = this.doStop()
    return this.stopping
  }

  private async doStop (): Promise<void> {
    this.clearTimer()
    this.inFlight?.abort()
    this.inFlight = undefined
    if (!this.started) return
    try {
      // a download that finished just before shutdown still counts as completed (scrape's
      // `downloaded`): say so before saying goodbye
      if (this.completedPending) await announce(this.init.announceUrl, await this.params('completed'), { timeout: STOP_TIMEOUT })
      await announce(this.init.announceUrl, await this.params('stopped'), { timeout: STOP_TIMEOUT })
    } catch (err) {
      this.log(`tracker: ${this.init.announceUrl} stopped announce failed: ${describe(err)}`)
    }
  }

  /** A freshly signed record each time: the tracker refuses one it has seen (replay protection). */
  private async params (event: AnnounceEvent | undefined): Promise<AnnounceParams> {
    const t = this.init.getTransfer()
    // past the tracker's limit the whole announce would be refused: the first ones are enough
    const addrs = this.init.getMultiaddrs().slice(0, MAX_ANNOUNCE_ADDRS)
    return {
      manifest: this.init.manifest,
      peerId: this.peerId,
      record: await signPeerRecord(this.init.privateKey, addrs, nextRecordSeq()),
      event,
      uploaded: t.uploaded,
      downloaded: t.downloaded,
      left: t.left,
      numwant: this.init.getNumwant?.()
    }
  }

  private nextEvent (): AnnounceEvent | undefined {
    if (this.completedPending) return 'completed'
    if (!this.registered) return 'started'
    return undefined
  }

  private async tick (): Promise<void> {
    this.timer = undefined
    if (this.stopping != null) return
    const controller = new AbortController()
    this.inFlight = controller
    const event = this.nextEvent()
    let result: AnnounceResult
    try {
      // getMultiaddrs/getTransfer are the caller's code: their throws count as a failed round
      const params = await this.params(event)
      result = await announce(this.init.announceUrl, params, { signal: controller.signal, timeout: this.timeout })
    } catch (err) {
      if (this.inFlight === controller) this.inFlight = undefined
      if (this.stopping != null || controller.signal.aborted) return
      this.failures++
      const delay = backoffDelay(this.failures, this.minBackoff, this.maxBackoff)
      if (this._status !== 'down') {
        this.log(`tracker: ${this.init.announceUrl} down: ${describe(err)}; retrying with backoff`)
      }
      this.setStatus('down')
      this.schedule(delay)
      return
    }
    if (this.inFlight === controller) this.inFlight = undefined
    if (this.stopping != null) return

    this.failures = 0
    this.registered = true
    this._swarm = { seeders: result.complete, leechers: result.incomplete }
    if (event === 'completed') this.completedPending = false
    if (this._status === 'down') this.log(`tracker: ${this.init.announceUrl} reachable again`)
    this.setStatus('ok')
    // others in the swarm, and not one address to dial: they sit behind NATs (the tracker lists
    // only addresses it can vouch for). Said once: what a user behind a NAT must know
    const others = result.complete + result.incomplete - 1
    if (others > 0 && result.peers.length === 0 && !this.saidUnreachable) {
      this.saidUnreachable = true
      this.log(`tracker: ${others} other peer${others === 1 ? '' : 's'} in this swarm, none with an address we can dial: they are behind NATs. ` +
        'One side needs a relay that carries data (`bitswarm relay` or `bitswarm tracker --relay` on a reachable host, then --relay on the peer behind the NAT) or a forwarded port (--announce)')
    }
    this.safeDispatchEvent('peers', { detail: result.peers })
    if (this.stopping != null) return // a listener may have stopped us
    if (this.completedPending) {
      this.schedule(0)
    } else {
      const seconds = Math.min(MAX_INTERVAL_S, Math.max(MIN_INTERVAL_S, result.interval, result.minInterval ?? 0))
      this.schedule(seconds * 1000)
    }
  }

  private schedule (ms: number): void {
    this.clearTimer()
    this.timer = setTimeout(() => { void this.tick() }, ms)
    // the announcer alone must not keep a process alive (e.g. after the node is closed)
    this.timer.unref()
  }

  private clearTimer (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  private setStatus (status: 'ok' | 'down'): void {
    if (this._status === status) return
    this._status = status
    this.safeDispatchEvent('status', { detail: status })
  }
}
