/**
 * The tracker service: node:http server, expiry sweep and periodic swarm stats.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { normalizeIp } from './addresses.js'
import { ConnectionLimiter, DEFAULT_MAX_CONNECTIONS_PER_IP, defaultMaxConnections, descriptorLimit } from './connections.js'
import type { ManifestFilter } from './allow.js'
import { handleRequest } from './http.js'
import type { HandlerContext } from './http.js'
import { seenSince } from './logic.js'
import { TrackerObserver } from './observe.js'
import type { TrackerLogEvent } from './observe.js'
import { MemoryPeerStore } from './store.js'
import type { MemoryPeerStoreInit, PeerStore } from './store.js'

export { BadRequestError, NotTrackedError, QuotaExceededError, StaleRecordError, TrackerFullError } from './errors.js'
export { MemoryPeerStore, StoreConfigError } from './store.js'
export { AllowList, AllowListError } from './allow.js'
export type { ManifestFilter } from './allow.js'
export type { MemoryPeerStoreInit, PeerStore, PeerEntry, SwarmCounts } from './store.js'
export { TrackerObserver, TOP_SWARMS } from './observe.js'
export type { RejectionKind, TrackerLogEvent, TrackerSnapshot } from './observe.js'

/**
 * Limits and memory of the default store (MemoryPeerStore): past a quota the announcer gets 429,
 * past a limit that eviction cannot relieve 503.
 */
export interface TrackerServerInit extends MemoryPeerStoreInit {
  /** default 127.0.0.1 */
  host?: string
  /** default 8000; 0 = a free port */
  port?: number
  /** the tracker's own relays (`tracker --relay`), multiaddrs with `/p2p/<id>`: see ownAddrs */
  relays?: string[]
  /** seconds between announces, told to clients; default 30 */
  interval?: number
  /** seconds, told to clients; default 5 */
  minInterval?: number
  /** seconds a silent peer is kept; default 2 × interval */
  peerTtl?: number
  /** ms between stats lines (one per swarm); default 30_000; 0 disables */
  statsInterval?: number
  /** default console.log */
  log?: (line: string) => void
  /**
   * Structured periodic log (`tracker --json`): at each stats interval a `swarm` event per swarm
   * and a `rejected` event per kind of request refused since the last one (with a count), instead
   * of the text lines. Default: text lines through `log`.
   */
  onEvent?: (event: TrackerLogEvent) => void
  /** default a new MemoryPeerStore with the limits above (which must then be left out) */
  store?: PeerStore
  /** ms; default Date.now */
  now?: () => number
  /** default Math.random (peer sampling) */
  random?: () => number
  /** open connections in all; default the descriptor limit less 64 (Linux), else 4096 */
  maxConnections?: number
  /** open connections from one IP (an IPv6 /64); default 128 */
  maxConnectionsPerIp?: number
  /** ms a client has to send its request headers; default 10_000 */
  headersTimeout?: number
  /** ms a client has to send its whole request; default 15_000 (at least headersTimeout) */
  requestTimeout?: number
  /** ms an idle keep-alive connection stays open; default 5000 */
  keepAliveTimeout?: number
  /**
   * IPs of reverse proxies in front of the tracker: for requests from them, the announcer is the
   * last address in X-Forwarded-For. Default none: the socket's peer is the announcer (a client
   * could write any X-Forwarded-For itself).
   */
  trustedProxies?: string[]
  /**
   * Only the manifests it allows are served; an announce or scrape for another gets 403
   * "manifest not tracked here" (see allow.ts AllowList). Default: every manifest.
   */
  allow?: ManifestFilter
}

export class TrackerServerError extends Error {
  override name = 'TrackerServerError'
}

export class TrackerServer {
  private readonly host: string
  private readonly initPort: number
  private readonly statsInterval: number
  private readonly log: (line: string) => void
  private readonly ctx: HandlerContext
  private readonly maxConnections: number
  private readonly headersTimeout: number
  private readonly requestTimeout: number
  private readonly keepAliveTimeout: number
  private readonly limiter: ConnectionLimiter
  private server: Server | undefined
  private boundPort: number | undefined
  private sweepTimer: ReturnType<typeof setInterval> | undefined
  private statsTimer: ReturnType<typeof setInterval> | undefined
  private readonly onEvent: ((event: TrackerLogEvent) => void) | undefined
  /** counters and swarm counts behind /stats, / and /metrics */
  readonly observer: TrackerObserver

  constructor (init: TrackerServerInit = {}) {
    const interval = positive('interval', init.interval ?? 30)
    const minInterval = nonNegative('minInterval', init.minInterval ?? 5)
    const peerTtl = positive('peerTtl', init.peerTtl ?? 2 * interval)
    this.host = init.host ?? '127.0.0.1'
    this.initPort = init.port ?? 8000
    this.statsInterval = nonNegative('statsInterval', init.statsInterval ?? 30_000)
    this.log = init.log ?? ((line) => { console.log(line) })
    const storeInit: MemoryPeerStoreInit = {
      maxPeersPerManifest: init.maxPeersPerManifest,
      maxManifests: init.maxManifests,
      maxPeersTotal: init.maxPeersTotal,
      replayWindow: init.replayWindow,
      historyTtl: init.historyTtl,
      maxSwarmsPerPeer: init.maxSwarmsPerPeer,
      maxPeersPerIp: init.maxPeersPerIp
    }
    // a given store has its own limits: silently ignoring these would be a trap
    if (init.store != null && Object.values(storeInit).some(v => v !== undefined)) {
      throw new TrackerServerError('store limits go to the store, not the server, when a store is given')
    }
    const trustedProxies = new Set((init.trustedProxies ?? []).map(ip => {
      const n = normalizeIp(ip)
      if (n === '') throw new TrackerServerError(`trustedProxies: ${ip} is not an IP address`)
      return n
    }))
    this.maxConnections = count('maxConnections', init.maxConnections ?? defaultMaxConnections(descriptorLimit()))
    this.limiter = new ConnectionLimiter(count('maxConnectionsPerIp', init.maxConnectionsPerIp ?? DEFAULT_MAX_CONNECTIONS_PER_IP), trustedProxies)
    this.headersTimeout = positive('headersTimeout', init.headersTimeout ?? 10_000)
    this.requestTimeout = positive('requestTimeout', init.requestTimeout ?? Math.max(15_000, this.headersTimeout))
    // node:http refuses a request timeout shorter than the headers timeout
    if (this.requestTimeout < this.headersTimeout) throw new TrackerServerError('requestTimeout must be at least headersTimeout')
    this.keepAliveTimeout = positive('keepAliveTimeout', init.keepAliveTimeout ?? 5000)
    this.onEvent = init.onEvent
    // the context is read when a snapshot is taken, not now
    this.observer = new TrackerObserver(init.store ?? new MemoryPeerStore(storeInit), () => {
      const now = this.ctx.now()
      return { now, seenSince: seenSince(now, this.ctx.logic.peerTtl) }
    })
    this.ctx = {
      store: this.observer.store,
      observer: this.observer,
      logic: { interval, minInterval, peerTtl, random: init.random ?? Math.random, relays: init.relays ?? [] },
      now: init.now ?? Date.now,
      log: this.log,
      trustedProxies,
      allow: init.allow
    }
  }

  /** The actual port once started (useful with port 0), else the configured one. */
  get port (): number {
    return this.boundPort ?? this.initPort
  }

  /** http://HOST:PORT/announce; only meaningful after start(). */
  get announceUrl (): string {
    if (this.boundPort === undefined) throw new TrackerServerError('tracker not started')
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    return `http://${host}:${this.boundPort}/announce`
  }

  async start (): Promise<void> {
    if (this.server != null) return
    const server = createServer({
      headersTimeout: this.headersTimeout,
      requestTimeout: this.requestTimeout,
      // how often the two timeouts above are checked (node's default, 30 s, lets them overrun)
      connectionsCheckingInterval: Math.min(1000, this.headersTimeout)
    }, (req, res) => { handleRequest(req, res, this.ctx) })
    server.keepAliveTimeout = this.keepAliveTimeout
    // past it node closes new sockets at once: better than running out of descriptors, where
    // nobody gets in and the process cannot open a file either
    server.maxConnections = this.maxConnections
    this.limiter.attach(server)
    this.server = server
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.initPort, this.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      this.server = undefined
      throw err
    }
    // a late socket error must not crash the process
    server.on('error', (err) => { this.log(`tracker: server error: ${err.message}`) })
    this.boundPort = (server.address() as AddressInfo).port

    // Expired peers are filtered on read anyway; the sweep only bounds memory. A shared store
    // expires entries by itself (Redis TTLs) and has no sweep.
    if (this.ctx.store.sweep != null) {
      const ttlMs = this.ctx.logic.peerTtl * 1000
      this.sweepTimer = setInterval(() => { this.sweep() }, Math.max(1000, Math.min(ttlMs / 2, 60_000)))
      this.sweepTimer.unref()
    }
    if (this.statsInterval > 0) {
      this.statsTimer = setInterval(() => { void this.logStats() }, this.statsInterval)
      this.statsTimer.unref()
    }
    this.log(`tracker: listening on ${this.announceUrl}`)
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    clearInterval(this.statsTimer)
    this.sweepTimer = undefined
    this.statsTimer = undefined
    const server = this.server
    if (server == null) return
    this.server = undefined
    await new Promise<void>((resolve) => {
      server.close(() => { resolve() })
      // keep-alive clients (fetch keeps sockets) would otherwise hold close() open
      server.closeAllConnections()
    })
    this.boundPort = undefined
  }

  /** Drop expired peers (and history past its time) now; returns how many peers (0 for a store without a sweep). */
  sweep (): number {
    if (this.ctx.store.sweep == null) return 0
    try {
      const now = this.ctx.now()
      return this.ctx.store.sweep(seenSince(now, this.ctx.logic.peerTtl), now)
    } catch (err) {
      this.log(`tracker: sweep failed: ${err instanceof Error ? err.message : String(err)}`)
      return 0
    }
  }

  /** One line per swarm: short cid, seeders, leechers, completed; and refused connections. Never rejects. */
  async logStats (): Promise<void> {
    const refused = this.limiter.takeRefused()
    if (refused.perIp > 0) this.log(`tracker: closed ${refused.perIp} connections over the per-IP cap (max ${this.limiter.maxPerIp})`)
    if (refused.total > 0) this.log(`tracker: closed ${refused.total} connections over maxConnections (${this.maxConnections})`)
    try {
      // one line per kind per interval, however many requests: the log cannot be flooded
      for (const r of this.observer.takeRejections()) {
        if (this.onEvent != null) this.onEvent(r)
        else this.log(`tracker: rejected ${r.count} requests (${r.kind}, ${r.status}), last: ${r.reason}`)
      }
      const now = this.ctx.now()
      for (const c of await this.ctx.store.swarms(seenSince(now, this.ctx.logic.peerTtl), now)) {
        if (this.onEvent != null) this.onEvent({ event: 'swarm', manifest: c.manifest, seeders: c.complete, leechers: c.incomplete, completed: c.downloaded })
        else this.log(`tracker: swarm ${shortCid(c.manifest)} seeders=${c.complete} leechers=${c.incomplete} completed=${c.downloaded}`)
      }
    } catch (err) {
      this.log(`tracker: stats failed: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
}

export function createTrackerServer (init?: TrackerServerInit): TrackerServer {
  return new TrackerServer(init)
}

function shortCid (cid: string): string {
  return cid.length <= 16 ? cid : `${cid.slice(0, 8)}…${cid.slice(-6)}`
}

function positive (name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TrackerServerError(`${name} must be a positive number`)
  return value
}

function count (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TrackerServerError(`${name} must be a positive integer`)
  return value
}

function nonNegative (name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new TrackerServerError(`${name} must be a non-negative number`)
  return value
}
