/**
 * What an operator sees of the tracker: counts of swarms and peers (GET /stats, GET /), Prometheus
 * metrics (GET /metrics, on a registry of the server's own: two servers in one process do not
 * share counters), and the rejected requests, grouped by kind so the log can be rate-limited.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { BadRequestError, QuotaExceededError, StaleRecordError, StoreUnavailableError, TrackerFullError } from './errors.js'
import type { PeerStore, StoreAnnounce, StoreAnnounceResult, SwarmCounts, SwarmSummary } from './store.js'

/**
 * Why a request was refused, from the error that refused it (see http.ts handleRequest): one
 * word per answer the tracker gives, so a dashboard can tell an attack (bad_request, stale_record)
 * from an overloaded tracker (full, quota) or a broken one (internal).
 */
export type RejectionKind =
  | 'bad_request' // 400
  | 'stale_record' // 400: a replayed or reordered signed record
  | 'not_tracked' // 403: not on the allowlist
  | 'not_found' // 404
  | 'method_not_allowed' // 405
  | 'quota' // 429
  | 'full' // 503
  | 'unavailable' // 503: the peer store (Redis) is down or too slow
  | 'internal' // 500

export type Outcome = 'ok' | RejectionKind

export function rejectionKind (err: unknown): RejectionKind {
  if (err instanceof StaleRecordError) return 'stale_record'
  if (err instanceof BadRequestError) {
    switch (err.status) {
      case 403: return 'not_tracked'
      case 404: return 'not_found'
      case 405: return 'method_not_allowed'
      default: return 'bad_request'
    }
  }
  if (err instanceof QuotaExceededError) return 'quota'
  if (err instanceof TrackerFullError) return 'full'
  if (err instanceof StoreUnavailableError) return 'unavailable'
  return 'internal'
}

/** The status code each kind is answered with. */
export function rejectionStatus (kind: RejectionKind): number {
  switch (kind) {
    case 'bad_request':
    case 'stale_record': return 400
    case 'not_tracked': return 403
    case 'not_found': return 404
    case 'method_not_allowed': return 405
    case 'quota': return 429
    case 'full':
    case 'unavailable': return 503
    case 'internal': return 500
  }
}

export type Endpoint = 'announce' | 'scrape' | 'other'

export interface SwarmStats { manifest: string, seeders: number, leechers: number, completed: number }

export interface TrackerSnapshot {
  /** swarms the store holds (with live peers, or only a completed counter still kept) */
  swarms: number
  peers: number
  seeders: number
  leechers: number
  /** event=completed reports, over the swarms still held */
  completed: number
  /** the swarms with the most peers, at most TOP_SWARMS of them */
  top: SwarmStats[]
}

/** How many swarms GET / lists: the page stays small however many swarms there are. */
export const TOP_SWARMS = 100
/** ms a snapshot is reused while the store does not change (a page reload must not rescan everything) */
const SNAPSHOT_MAX_AGE = 1000

/** One line of the periodic log: a rejected kind since the last interval, or a swarm's counts. */
export type TrackerLogEvent =
  | { event: 'swarm', manifest: string, seeders: number, leechers: number, completed: number }
  | { event: 'rejected', kind: RejectionKind, status: number, count: number, reason: string }

/**
 * A PeerStore that counts its own failures (anything but the refusals the interface documents)
 * and bumps `version` on every change it sees, so a snapshot knows when it is stale (changes made
 * by other instances on a shared store it cannot see: a snapshot lives a second at most).
 */
export class ObservedStore implements PeerStore {
  version = 0
  readonly sweep?: (seenSince: number, now: number) => number
  constructor (readonly inner: PeerStore, private readonly onError: () => void) {
    const sweep = inner.sweep
    if (sweep != null) this.sweep = (seenSince, now) => this.guard(() => sweep.call(inner, seenSince, now), true)
  }

  private guard<T>(f: () => T, change: boolean): T {
    try {
      return f()
    } catch (err) {
      this.failed(err)
      throw err
    } finally {
      if (change) this.version++
    }
  }

  private async guardAsync<T>(f: () => Promise<T>, change: boolean): Promise<T> {
    try {
      return await f()
    } catch (err) {
      this.failed(err)
      throw err
    } finally {
      if (change) this.version++
    }
  }

  private failed (err: unknown): void {
    if (!(err instanceof QuotaExceededError || err instanceof TrackerFullError || err instanceof StaleRecordError)) this.onError()
  }

  async announce (a: StoreAnnounce): Promise<StoreAnnounceResult> { return await this.guardAsync(async () => await this.inner.announce(a), true) }
  async scrape (manifests: string[], seenSince: number, now: number): Promise<SwarmCounts[]> { return await this.guardAsync(async () => await this.inner.scrape(manifests, seenSince, now), false) }
  async swarms (seenSince: number, now: number): Promise<SwarmSummary[]> { return await this.guardAsync(async () => await this.inner.swarms(seenSince, now), false) }
}

/** seconds: an announce costs about 0.2 ms of signature check, more under load */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export class TrackerObserver {
  readonly registry = new Registry()
  readonly store: ObservedStore
  private readonly announces = new Map<Outcome, number>()
  private readonly scrapes = new Map<Outcome, number>()
  private readonly errors = new Map<RejectionKind, number>()
  /** rejected since the last takeRejections(): count and the last reason, per kind */
  private pending = new Map<RejectionKind, { count: number, reason: string }>()
  private readonly startedAt = performance.now()
  private cached: { at: number, version: number, snapshot: TrackerSnapshot } | undefined
  private making: Promise<TrackerSnapshot> | undefined
  private storeErrorCount = 0
  private readonly announceCounter: Counter<'outcome'>
  private readonly scrapeCounter: Counter<'outcome'>
  private readonly announceLatency: Histogram<'outcome'>
  private readonly scrapeLatency: Histogram<'outcome'>
  private readonly rejectedAnnounces: Counter<'reason'>
  private readonly rejectedRequests: Counter<'kind'>
  private readonly storeErrors: Counter

  /** `window()`: the tracker's clock now, and the oldest lastSeen still alive (see logic.ts seenSince) */
  constructor (store: PeerStore, private readonly window: () => { now: number, seenSince: number }) {
    this.store = new ObservedStore(store, () => { this.storeError() })
    const registers = [this.registry]
    this.announceCounter = new Counter({ name: 'bitswarm_tracker_announces_total', help: 'Announces answered, by outcome (ok or the rejection kind)', labelNames: ['outcome'], registers })
    this.scrapeCounter = new Counter({ name: 'bitswarm_tracker_scrapes_total', help: 'Scrapes answered, by outcome (ok or the rejection kind)', labelNames: ['outcome'], registers })
    this.announceLatency = new Histogram({ name: 'bitswarm_tracker_announce_duration_seconds', help: 'Time from request to answer of announces, by outcome', labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers })
    this.scrapeLatency = new Histogram({ name: 'bitswarm_tracker_scrape_duration_seconds', help: 'Time from request to answer of scrapes, by outcome', labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers })
    this.rejectedAnnounces = new Counter({ name: 'bitswarm_tracker_rejected_announces_total', help: 'Announces refused, by reason', labelNames: ['reason'], registers })
    this.rejectedRequests = new Counter({ name: 'bitswarm_tracker_rejected_requests_total', help: 'Requests refused on any path, by kind', labelNames: ['kind'], registers })
    this.storeErrors = new Counter({ name: 'bitswarm_tracker_store_errors_total', help: 'Failures of the peer store (not its refusals: quotas and limits)', registers })
    this.announceCounter.labels('ok').inc(0)
    this.scrapeCounter.labels('ok').inc(0)
    this.announceLatency.zero({ outcome: 'ok' })
    this.scrapeLatency.zero({ outcome: 'ok' })
    this.storeErrors.inc(0)
    const self = this
    const gauge = (name: string, help: string, pick: (s: TrackerSnapshot) => number): void => {
      // eslint-disable-next-line no-new
      new Gauge({
        name,
        help,
        registers,
        async collect () {
          const s = await self.trySnapshot()
          if (!('error' in s)) this.set(pick(s))
        }
      })
    }
    gauge('bitswarm_tracker_swarms', 'Swarms held (with live peers, or only a completed counter)', s => s.swarms)
    gauge('bitswarm_tracker_peers', 'Live peers in all swarms', s => s.peers)
    gauge('bitswarm_tracker_seeders', 'Live peers with nothing left to download', s => s.seeders)
    gauge('bitswarm_tracker_leechers', 'Live peers still downloading', s => s.leechers)
    gauge('bitswarm_tracker_completed', 'Completions reported, over the swarms held', s => s.completed)
    // eslint-disable-next-line no-new
    new Gauge({ name: 'bitswarm_tracker_uptime_seconds', help: 'Seconds since the tracker started', registers, collect () { this.set(self.uptime) } })
  }

  /** seconds since this observer (its server) was made */
  get uptime (): number {
    return Math.floor((performance.now() - this.startedAt) / 1000)
  }

  storeError (): void {
    this.storeErrorCount++
    this.storeErrors.inc()
  }

  /** A request answered: `seconds` from its arrival; `err` what refused it, if anything. */
  record (endpoint: Endpoint, seconds: number, err?: unknown): void {
    const outcome: Outcome = err === undefined ? 'ok' : rejectionKind(err)
    if (endpoint === 'announce') {
      this.announces.set(outcome, (this.announces.get(outcome) ?? 0) + 1)
      this.announceCounter.labels(outcome).inc()
      this.announceLatency.labels(outcome).observe(seconds)
      if (outcome !== 'ok') this.rejectedAnnounces.labels(outcome).inc()
    } else if (endpoint === 'scrape') {
      this.scrapes.set(outcome, (this.scrapes.get(outcome) ?? 0) + 1)
      this.scrapeCounter.labels(outcome).inc()
      this.scrapeLatency.labels(outcome).observe(seconds)
    }
    if (outcome === 'ok') return
    this.errors.set(outcome, (this.errors.get(outcome) ?? 0) + 1)
    this.rejectedRequests.labels(outcome).inc()
    // only our own messages: a client-sent value is never part of one beyond a number
    const reason = outcome === 'internal' ? 'internal error' : err instanceof Error ? err.message.slice(0, 200) : String(err)
    const p = this.pending.get(outcome)
    if (p == null) this.pending.set(outcome, { count: 1, reason })
    else {
      p.count++
      p.reason = reason
    }
  }

  /** The rejections since the last call, one entry per kind: what the periodic log shows. */
  takeRejections (): Array<Extract<TrackerLogEvent, { event: 'rejected' }>> {
    const out = [...this.pending].map(([kind, p]) => ({ event: 'rejected' as const, kind, status: rejectionStatus(kind), count: p.count, reason: p.reason }))
    this.pending = new Map()
    return out
  }

  /**
   * Counts over the whole store; reused for up to a second while the store does not change, and
   * shared by callers that ask while it is being made (the five gauges of one /metrics scrape).
   */
  async snapshot (): Promise<TrackerSnapshot> {
    const now = performance.now()
    const c = this.cached
    if (c != null && c.version === this.store.version && now - c.at < SNAPSHOT_MAX_AGE) return c.snapshot
    if (this.making != null) return await this.making
    const version = this.store.version
    const making = this.makeSnapshot().then((snapshot) => {
      this.cached = { at: now, version, snapshot }
      return snapshot
    }).finally(() => { this.making = undefined })
    this.making = making
    return await making
  }

  private async makeSnapshot (): Promise<TrackerSnapshot> {
    const { now, seenSince } = this.window()
    const all: SwarmStats[] = []
    let seeders = 0
    let leechers = 0
    let completed = 0
    for (const k of await this.store.swarms(seenSince, now)) {
      all.push({ manifest: k.manifest, seeders: k.complete, leechers: k.incomplete, completed: k.downloaded })
      seeders += k.complete
      leechers += k.incomplete
      completed += k.downloaded
    }
    all.sort((a, b) => (b.seeders + b.leechers) - (a.seeders + a.leechers) || (a.manifest < b.manifest ? -1 : a.manifest > b.manifest ? 1 : 0))
    return { swarms: all.length, peers: seeders + leechers, seeders, leechers, completed, top: all.slice(0, TOP_SWARMS) }
  }

  /**
   * GET /stats. While the store cannot answer (Redis down) the counters still come, with
   * `store: {ok: false, error}` instead of the swarm counts: an operator sees why.
   */
  async stats (): Promise<Record<string, unknown>> {
    const s = await this.trySnapshot()
    const counters = {
      announces: Object.fromEntries(this.announces),
      scrapes: Object.fromEntries(this.scrapes),
      errors: Object.fromEntries(this.errors),
      storeErrors: this.storeErrorCount,
      uptime: this.uptime
    }
    if ('error' in s) return { store: { ok: false, error: s.error }, ...counters }
    const { top: _top, ...counts } = s
    return { ...counts, store: { ok: true }, ...counters }
  }

  /** GET / : the same as /stats, and the top swarms; every printed value escaped. */
  async page (): Promise<string> {
    const snap = await this.trySnapshot()
    const row = (cells: Array<string | number>, tag = 'td'): string => `<tr>${cells.map(c => `<${tag}>${escapeHtml(String(c))}</${tag}>`).join('')}</tr>`
    const table = (rows: Array<[string, number]>): string => rows.length === 0 ? '<p>none</p>' : `<table>${rows.map(([k, v]) => row([k, v])).join('')}</table>`
    const title = 'bitswarm tracker'
    const swarms = (s: TrackerSnapshot): string[] => [
      table([['swarms', s.swarms], ['peers', s.peers], ['seeders', s.seeders], ['leechers', s.leechers], ['completed', s.completed], ['store errors', this.storeErrorCount]]),
      '<h2>Announces</h2>', table([...this.announces]),
      '<h2>Scrapes</h2>', table([...this.scrapes]),
      '<h2>Rejected requests</h2>', table([...this.errors]),
      `<h2>Swarms (${s.top.length < s.swarms ? `top ${s.top.length} by peers of ${s.swarms}` : String(s.swarms)})</h2>`,
      s.top.length === 0
        ? '<p>none</p>'
        : `<table>${row(['manifest', 'seeders', 'leechers', 'completed'], 'th')}${s.top.map(w => row([w.manifest, w.seeders, w.leechers, w.completed])).join('')}</table>`
    ]
    return [
      '<!doctype html>',
      '<html lang="en"><head><meta charset="utf-8">',
      `<title>${title}</title>`,
      '<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td:first-child,th:first-child{text-align:left;font-family:monospace}</style>',
      '</head><body>',
      `<h1>${title}</h1>`,
      `<p>up ${escapeHtml(String(this.uptime))} s · <a href="/stats">/stats</a> · <a href="/metrics">/metrics</a></p>`,
      ...('error' in snap
        ? [`<p><strong>store unavailable:</strong> ${escapeHtml(snap.error)}</p>`, table([['store errors', this.storeErrorCount]]), '<h2>Announces</h2>', table([...this.announces]), '<h2>Rejected requests</h2>', table([...this.errors])]
        : swarms(snap)),
      '</body></html>',
      ''
    ].join('\n')
  }

  /** the swarm counts, or why not (a store error is counted by the store wrapper) */
  async trySnapshot (): Promise<TrackerSnapshot | { error: string }> {
    try {
      return await this.snapshot()
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) }
    }
  }
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, c => HTML_ESCAPES[c])
}
