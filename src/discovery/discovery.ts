/**
 * Finding the swarm: trackers first, and without them the Kademlia DHT, bootstrap addresses and
 * peers remembered from earlier runs. Peer exchange lives in the swarm (it rides the wire
 * protocol); everything else that brings peers in is here. Every peer it finds is written to the
 * peer book (which refuses our own id) and comes out of one `peers` event tagged with its source.
 * The peer cache is the book's memory across runs: its peers are dialled at start, and the peers
 * the book marks reached are saved to it. The peer book, the tracker announcers, the DHT, the peer
 * cache and the clock are components (DiscoveryComponents): built from the init unless passed in.
 */
import { TypedEventEmitter } from 'main-event'
import type { PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { announceAddrs, dhtModeOf, type BitswarmNode, type DhtMode } from '../node.js'
import type { PeerSource } from './types.js'
import { DhtDiscovery, type DhtTablesStatus } from './dht.js'
import { PeerBook } from './peer-book.js'
import { PeerCache } from './peer-cache.js'
import { TrackerAnnouncer } from './tracker-client.js'
import type { PeerAddress } from './types.js'
import { withPeerId } from '../net/addr.js'

export interface DiscoveryInit {
  node: BitswarmNode
  /** the node's key: it signs the peer records we announce to trackers (needed only with trackers) */
  privateKey?: PrivateKey
  cid: CID
  trackers: string[]
  /** multiaddrs with `/p2p/<id>` to join the DHT through */
  bootstrap: string[]
  /** where the peer cache lives; none = no cache */
  stateDir?: string
  getTransfer: () => { uploaded: number, downloaded: number, left: number }
  /** do we want more peers right now? (downloading, with few connections) */
  wantPeers: () => boolean
  /** ms between DHT lookups while the trackers are down (default 5_000; 6x that while they answer) */
  lookupInterval?: number
  /**
   * the DHTs to provide and look up the manifest on (default `auto`: each one the node runs;
   * true is `auto`, false `off`); bootstrap peers are dialled either way
   */
  dht?: boolean | DhtMode
  reprovideInterval?: number
  trackerMinBackoff?: number
  log?: (msg: string) => void
}

/** What Discovery uses of the DHT (a DhtDiscovery is one; `tablesStatus` is optional). */
export type DiscoveryDht = Pick<DhtDiscovery, 'start' | 'stop' | 'bootstrap' | 'findProviders' | 'routingTableSize' | 'provided'> & Partial<Pick<DhtDiscovery, 'tablesStatus'>>
/** What Discovery uses of the peer cache (a PeerCache is one). */
export type DiscoveryCache = Pick<PeerCache, 'load' | 'save'>
/**
 * What Discovery uses of a tracker announcer (a TrackerAnnouncer is one): its `peers` events, and
 * the swarm's size as the tracker last counted it (optional).
 */
export type DiscoveryAnnouncer = Pick<TrackerAnnouncer, 'status' | 'start' | 'completed' | 'stop' | 'addEventListener'> & Partial<Pick<TrackerAnnouncer, 'swarm'>>

/**
 * What Discovery works with, each built from DiscoveryInit unless passed in (tests pass fakes;
 * js-libp2p's components, in spirit).
 */
export interface DiscoveryComponents {
  /** the peers we know of, shared with the swarm (default a new PeerBook of the node's id) */
  book: PeerBook
  /** provides and looks up the manifest (default a DhtDiscovery on the node) */
  dht: DiscoveryDht
  /** the book's peers across runs (default a PeerCache in `stateDir`; none without one) */
  cache: DiscoveryCache | undefined
  /** one per tracker (default a TrackerAnnouncer per `trackers` URL; given, `trackers` is unused) */
  announcers: DiscoveryAnnouncer[]
  now: () => number
}

export interface DiscoveryEvents {
  peers: CustomEvent<{ peers: PeerAddress[], source: PeerSource }>
}

export interface DiscoveryStatus {
  /** `ok`, `down`, `pending` per tracker (comma-separated), or `none` */
  tracker: string
  /**
   * `routingTable` and `provided` for the DHTs in use together; `mode` which of them are used
   * (the `dht` option: auto, lan, wan, off; always set by Discovery); `lan` and `wan` each of
   * them, when used (the WAN one's `mode` says whether it serves yet)
   */
  dht: { routingTable: number, provided: boolean, mode?: DhtMode } & DhtTablesStatus
  /**
   * the swarm's seeders and leechers as the trackers counted them in their latest answers (the
   * largest count of any tracker; ourselves included once registered); absent until one answers
   */
  seeders?: number
  leechers?: number
}

/** peers asked of a tracker while we want more (the most our tracker gives) */
const WANT_NUMWANT = 200
/** bootstrap and cached peers tried at start, at most */
const MAX_BOOTSTRAP = 20
const CACHE_SAVE_MS = 60_000

export class Discovery extends TypedEventEmitter<DiscoveryEvents> {
  private readonly init: DiscoveryInit
  private readonly book: PeerBook
  private readonly announcers: DiscoveryAnnouncer[]
  private readonly dht: DiscoveryDht
  private readonly cache: DiscoveryCache | undefined
  private readonly now: () => number
  private readonly log: (msg: string) => void
  private readonly lookupInterval: number
  private readonly useDht: boolean
  private readonly dhtMode: DhtMode
  private readonly abort = new AbortController()
  private lookupTimer: ReturnType<typeof setTimeout> | undefined
  private saveTimer: ReturnType<typeof setInterval> | undefined
  private lastLookup = 0
  private looking = false
  private started = false
  private stopped = false

  constructor (init: DiscoveryInit, components: Partial<DiscoveryComponents> = {}) {
    super()
    this.init = init
    this.log = init.log ?? (() => {})
    // read at each call, not captured: a test may fake Date after construction
    this.now = components.now ?? (() => Date.now())
    this.book = components.book ?? new PeerBook({ self: init.node.peerId.toString(), now: this.now })
    this.lookupInterval = init.lookupInterval ?? 5_000
    this.dhtMode = dhtModeOf(init.dht)
    this.useDht = this.dhtMode !== 'off'
    this.dht = components.dht ?? new DhtDiscovery({ node: init.node, cid: init.cid, mode: this.dhtMode, reprovideInterval: init.reprovideInterval, log: this.log })
    this.cache = components.cache ?? (init.stateDir != null ? new PeerCache({ dir: init.stateDir, log: this.log }) : undefined)
    this.announcers = components.announcers ?? this.trackerAnnouncers(init)
    for (const a of this.announcers) a.addEventListener('peers', (evt) => { this.emitPeers(evt.detail, 'tracker') })
  }

  /** One announcer per tracker URL, announcing our node's addresses, signed with its key. */
  private trackerAnnouncers (init: DiscoveryInit): TrackerAnnouncer[] {
    return init.trackers.map(url => {
      // the peer checks this first, with a typed error (a program's own node keeps its key)
      if (init.privateKey == null) throw new TypeError('announcing to trackers needs the node\'s private key')
      return new TrackerAnnouncer({
        announceUrl: url,
        manifest: init.cid.toString(),
        privateKey: init.privateKey,
        getMultiaddrs: () => announceAddrs(init.node),
        getTransfer: init.getTransfer,
        // a crowd of fake entries must not hide the real peers in the tracker's sample: ask for
        // as many as a tracker gives (libtorrent asks 200 too) while we want peers
        getNumwant: () => init.wantPeers() ? WANT_NUMWANT : undefined,
        minBackoff: init.trackerMinBackoff,
        log: this.log
      })
    })
  }

  /** Peers remembered from earlier runs (none without a state dir). */
  async cachedPeers (): Promise<PeerAddress[]> {
    return await (this.cache?.load() ?? Promise.resolve([]))
  }

  get trackersUp (): boolean {
    return this.announcers.some(a => a.status === 'ok')
  }

  status (): DiscoveryStatus {
    return {
      tracker: this.announcers.length === 0 ? 'none' : this.announcers.map(a => a.status).join(','),
      dht: {
        routingTable: this.dht.routingTableSize,
        provided: this.useDht && this.dht.provided,
        mode: this.dhtMode,
        ...(this.useDht ? this.dht.tablesStatus?.() : {})
      },
      ...this.swarmCounts()
    }
  }

  /**
   * The trackers' latest counts of the swarm: with several, the largest of each (each tracker
   * sees only the peers that announce to it), nothing until one has answered.
   */
  private swarmCounts (): Pick<DiscoveryStatus, 'seeders' | 'leechers'> {
    let seeders: number | undefined
    let leechers: number | undefined
    for (const a of this.announcers) {
      const c = a.swarm
      if (c == null) continue
      seeders = Math.max(seeders ?? 0, c.seeders)
      leechers = Math.max(leechers ?? 0, c.leechers)
    }
    return seeders == null ? {} : { seeders, leechers }
  }

  /** Announces to the trackers, joins the DHT, provides the manifest, and starts looking. */
  async start (): Promise<void> {
    // once stopped, never again (a peer stopped while it was starting ends here)
    if (this.started || this.stopped) return
    this.started = true
    for (const a of this.announcers) a.start()
    // every member provides the CID, whether or not the tracker works, so that the DHT
    // already knows the swarm on the day the tracker dies
    if (this.useDht) this.dht.start()
    const cached = (await this.cachedPeers()).slice(0, MAX_BOOTSTRAP)
    if (this.stopped) return
    void this.join(this.init.bootstrap, 'bootstrap')
    void this.join(cached.flatMap(p => p.multiaddrs.slice(0, 2).map(a => withPeerId(a, p.peerId))), 'cache')
    this.saveTimer = setInterval(() => { void this.saveCache() }, CACHE_SAVE_MS)
    this.saveTimer.unref?.()
    this.schedule(1000)
  }

  /** Dials addresses to join the DHT; the ones that answer may be swarm members too. */
  private async join (addrs: string[], source: PeerSource): Promise<void> {
    if (addrs.length === 0) return
    try {
      // peers remembered from earlier runs are mostly gone: their failed dials are expected, so
      // one line says how many answered instead of a line for each that did not
      const reached = await this.dht.bootstrap(addrs, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(15_000)]), logFailures: source !== 'cache' })
      if (reached.length === 0 && source === 'bootstrap') this.log(`bootstrap: none of ${addrs.length} addresses answered`)
      if (source === 'cache') this.log(`peer cache: ${reached.length} of the peers remembered from earlier runs answered (${addrs.length} addresses dialled)`)
      const passedOn = this.emitPeers(reached, source)
      // a bootstrap peer that answered is worth remembering even if it is not in this swarm
      if (source === 'bootstrap') for (const p of passedOn) this.book.reached(p.peerId)
      // with a routing table at last, look for the swarm now rather than at the next tick
      if (reached.length > 0) this.schedule(0)
    } catch (err) {
      if (!this.stopped) this.log(`bootstrap failed: ${(err as Error).message}`)
    }
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    if (this.lookupTimer != null) clearTimeout(this.lookupTimer)
    this.lookupTimer = setTimeout(() => { void this.tick() }, ms)
    this.lookupTimer.unref?.()
  }

  /**
   * Looks up the manifest's providers on the DHT when we want peers and the trackers are not
   * giving them: often while the trackers are down, rarely while they answer.
   */
  private async tick (): Promise<void> {
    this.lookupTimer = undefined
    if (this.stopped) return
    const interval = this.trackersUp ? this.lookupInterval * 6 : this.lookupInterval
    if (this.now() - this.lastLookup >= interval - 50 && this.init.wantPeers()) await this.lookup()
    this.schedule(this.lookupInterval)
  }

  /** One DHT lookup for the manifest's providers. */
  async lookup (): Promise<void> {
    if (this.looking || this.stopped || !this.useDht) return
    this.looking = true
    this.lastLookup = this.now()
    try {
      const found = await this.dht.findProviders({ signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(10_000)]), limit: 20 })
      this.emitPeers(found, 'dht')
    } catch (err) {
      if (!this.stopped) this.log(`dht lookup failed: ${(err as Error).message}`)
    } finally {
      this.looking = false
    }
  }

  /** Writes peers to the book and passes on what it accepts (see PeerBook.add); returns that. */
  private emitPeers (peers: PeerAddress[], source: PeerSource): PeerAddress[] {
    if (this.stopped) return []
    const passed = this.book.add(peers, source)
    if (passed.length > 0) this.safeDispatchEvent('peers', { detail: { peers: passed, source } })
    return passed
  }

  /** The peers the book marked reached go to the peer cache. */
  private async saveCache (): Promise<void> {
    await this.cache?.save(this.book.reachedPeers())
  }

  completed (): void {
    for (const a of this.announcers) a.completed()
  }

  /** Announces `stopped`, saves the peer cache, leaves the DHT. Never throws. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    if (this.lookupTimer != null) clearTimeout(this.lookupTimer)
    if (this.saveTimer != null) clearInterval(this.saveTimer)
    this.dht.stop()
    await Promise.all([
      ...this.announcers.map(async a => { await a.stop() }),
      this.saveCache().catch(() => {})
    ])
  }
}
