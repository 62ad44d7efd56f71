/**
 * The swarm: one manifest's peer sessions, tied to the piece picker, the choker and the piece
 * store. It is the coordinator: it owns the wire protocol handler, the dials, the timers (the
 * rechoke and a 1 s tick) and the sessions' delegate, and hands each event to the module whose
 * job it is:
 * - requests.ts (RequestLoop): interest, which blocks we ask whom for, timeouts, backoff;
 * - chokes.ts (ChokeRounds): whom we upload to, as the choker (choker/) decides;
 * - assembly.ts (PieceAssembly): blocks into pieces, hash checks, strikes and bans;
 * - exchange-peers.ts (PeerExchange): peer exchange;
 * - sessions.ts (SessionRegistry): the open sessions, one per peer;
 * - slots.ts (SessionSlots, over admission.ts's policy): who may hold a session slot;
 * - stats.ts: the counters and the SwarmStats snapshot;
 * - discovery/peer-book.ts (PeerBook, shared with discovery): the peers we are told of, by
 *   addPeers and by peer exchange.
 * What needs libp2p itself (the protocol handler, dials, identify, remote addresses) stays here;
 * bytes on the wire are session/ and wire/'s business.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import type { Connection, IdentifyResult, Libp2p, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { Uint8ArrayList } from 'uint8arraylist'
import { Bitfield } from '../bitfield.js'
import { DialGuard } from '../discovery/dial-guard.js'
import { DialRefusedError, dialGuarded } from '../discovery/guarded-dial.js'
import { PeerBook } from '../discovery/peer-book.js'
import type { PeerAddress, PeerSource } from '../discovery/types.js'
import type { ChokerInit } from '../choker/choker.js'
import { manifestLayout, pieceCount, type Manifest } from '../manifest/manifest.js'
import { PiecePicker } from '../picker/picker.js'
import { PeerSession, shortId, type SessionDelegate } from '../session/session.js'
import { Throttle } from '../throttle.js'
import { ipOf } from '../net/pending-inbound.js'
import { carriesData, connectionKind } from '../net/relay.js'
import { withoutPeerId } from '../net/addr.js'
import { UnreachableWatch } from '../net/reachability.js'
import type { AdmissionInit } from './admission.js'
import { PieceAssembly } from './assembly.js'
import { ChokeRounds, swarmChoker } from './chokes.js'
import { PeerExchange } from './exchange-peers.js'
import { RequestLoop } from './requests.js'
import { SessionRegistry, type PeerVia } from './sessions.js'
import { SessionSlots } from './slots.js'
import { peerInfo, swarmStats, TransferCounters, type PeerInfo, type SwarmStats } from './stats.js'
import { PieceCache } from '../storage/piece-cache.js'
import type { PieceStore } from '../storage/storage.js'
import { WIRE_PROTOCOL, type BlockSpec, type WirePeer } from '../wire/codec.js'

export { emptySources, PEER_SOURCES, type PeerSource } from '../discovery/types.js'
export type { PeerInfo, SwarmStats } from './stats.js'

/** The pieces at a glance (see Swarm.pieceMap). */
export interface PieceMap {
  /** pieces of the manifest */
  pieces: number
  /** the verified pieces we hold (a copy) */
  have: Bitfield
  /** pieces requested and not yet verified, in index order */
  inFlight: number[]
  /** per piece, how many connected peers have it (capped at 255) */
  availability: Uint8Array
}

export interface SwarmInit {
  node: Libp2p
  manifest: Manifest
  cid: CID
  store: PieceStore
  /** pieces already verified on disk (all of them when seeding) */
  have?: Bitfield
  /** the pieces to download (a selection of a folder's files; default all): complete once we have them */
  wanted?: Bitfield
  /** we start as a seeder: nothing to download, nothing to finalize */
  seeding?: boolean
  choker?: ChokerInit
  /** most sessions at once (default 50) */
  maxPeers?: number
  /** who may hold a session slot when full: grace period, idle eviction, share per IP (see Admission) */
  admission?: Omit<AdmissionInit, 'maxPeers'>
  /** which told-of addresses may be dialled (per-address backoff, peer ids per address); default a new one */
  dialGuard?: DialGuard
  /** the peers we know of: addPeers and peer exchange write to it (default a new one of the node's id) */
  book?: PeerBook
  /** a request not answered within this many ms is given to another peer (default 30_000) */
  requestTimeout?: number
  /** upload cap in bytes/s for all sessions together (default: none) */
  maxUploadRate?: number
  /** download cap in bytes/s for all sessions together (default: none) */
  maxDownloadRate?: number
  /** ms between peer-exchange messages to each peer (default 30_000; the first goes after ~1 s) */
  pexInterval?: number
  /** bad pieces a peer may have had a hand in before it is banned (default 2) */
  maxStrikes?: number
  log?: (msg: string) => void
  now?: () => number
  random?: () => number
}

export interface SwarmEvents {
  'piece': CustomEvent<number>
  'complete': CustomEvent<{ path: string, bytes: number }>
  /** a session opened; `source` is how we learned of the peer, `via` how we reach it */
  'peer:connect': CustomEvent<{ peerId: string, source: PeerSource, via: PeerVia }>
  /**
   * a session closed: `reason` says why (a protocol violation, a failed stream, `both have every
   * piece`, …); none when the stream just ended (the peer left, or we let an idle session go)
   */
  'peer:disconnect': CustomEvent<{ peerId: string, reason?: string }>
  'error': CustomEvent<Error>
}

const TICK_MS = 1000
/** why a seed closes its session with another */
const BOTH_SEEDS = 'both have every piece'
/**
 * Pieces being assembled hold at most this many bytes of buffers (or one piece, if larger): a
 * peer that sends every block of a piece but the last cannot make us start piece after piece.
 */
const PARTIAL_PIECE_BYTES = 64 * 1024 * 1024
/** Quiet for this long, we send a keep-alive; a peer quiet for DEAD_PEER_MS is gone. */
const KEEP_ALIVE_MS = 30_000
const DEAD_PEER_MS = 4 * KEEP_ALIVE_MS

export class Swarm extends TypedEventEmitter<SwarmEvents> implements SessionDelegate {
  readonly manifest: Manifest
  readonly cid: CID
  private readonly node: Libp2p
  private readonly store: PieceStore
  private readonly cache: PieceCache
  private readonly picker: PiecePicker
  /** the open session with each peer, with its remote IP and how we learned of the peer */
  private readonly sessions: SessionRegistry<PeerSession>
  private readonly dialing = new Set<string>()
  /** peers we had a relayed session with (bounded by the peers we ever had sessions with this run) */
  private readonly wasRelayed = new Set<string>()
  /** peers whose last dial failed, and whether only a too-limited relay reached them (bounded by the peer book) */
  private readonly unreachable = new UnreachableWatch()
  /** why we closed a session without a protocol reason (the session's own close takes none): for peer:disconnect */
  private readonly quietReasons = new WeakMap<PeerSession, string>()
  private readonly dialGuard: DialGuard
  /** the peers we know of (shared with discovery when the Peer runs us) */
  private readonly book: PeerBook
  /** peer exchange: what we gossip, to whom and when, and what we hear */
  private readonly exchange: PeerExchange
  /** piece buffers, hash checks, and strikes and bans for bad data */
  private readonly assembly: PieceAssembly
  /** our interest in each peer, and the requests we send it */
  private readonly requests: RequestLoop<PeerSession>
  /** whom we upload to, and each one's share of a capped uplink */
  private readonly chokes: ChokeRounds<PeerSession>
  private readonly transfer: TransferCounters
  private readonly log: (msg: string) => void
  private readonly now: () => number
  /** who may hold a session slot (see Admission) */
  private readonly slots: SessionSlots<PeerSession>
  private readonly throttle: Throttle
  private readonly downloadThrottle: Throttle
  private readonly manifestBytes: Uint8Array
  private readonly count: number
  /** each piece's size, from the layout's table (a lookup, however many files) */
  private readonly pieceSize: (piece: number) => number
  /** the pieces we download (undefined: all) */
  private readonly wanted: Bitfield | undefined
  private timers: Array<ReturnType<typeof setInterval>> = []
  private running = false
  private completing = false
  private completed = false

  constructor (init: SwarmInit) {
    super()
    this.node = init.node
    this.manifest = init.manifest
    this.cid = init.cid
    this.store = init.store
    this.log = init.log ?? (() => {})
    this.now = init.now ?? Date.now
    this.sessions = new SessionRegistry({ self: init.node.peerId.toString() })
    this.slots = new SessionSlots({ sessions: this.sessions, maxPeers: init.maxPeers, admission: init.admission, log: this.log, now: this.now })
    this.throttle = new Throttle({ rate: init.maxUploadRate ?? 0 })
    this.downloadThrottle = new Throttle({ rate: init.maxDownloadRate ?? 0 })
    this.transfer = new TransferCounters({ now: this.now })
    this.book = init.book ?? new PeerBook({ self: init.node.peerId.toString(), now: this.now })
    this.exchange = new PeerExchange({
      book: this.book,
      interval: init.pexInterval,
      log: this.log,
      now: this.now,
      random: init.random,
      delegate: {
        send: (peer, peers) => { this.sessions.get(peer)?.sendPeers(peers) },
        // already in the book (the exchange wrote them there)
        discovered: (peers) => { this.dialPeers(peers, 'pex') }
      }
    })
    this.dialGuard = init.dialGuard ?? new DialGuard({ now: this.now })
    this.manifestBytes = init.cid.bytes
    this.count = pieceCount(init.manifest)
    this.pieceSize = manifestLayout(init.manifest).pieceSize
    this.cache = new PieceCache(init.store, init.manifest.pieceLength, undefined, this.pieceSize)
    this.wanted = init.wanted
    this.picker = new PiecePicker({
      pieceCount: this.count,
      pieceLength: init.manifest.pieceLength,
      totalLength: init.manifest.length,
      // a folder's files each start a piece: the last piece of every file may be short
      pieceSize: init.manifest.version === 2 ? this.pieceSize : undefined,
      have: init.have,
      wanted: init.wanted,
      random: init.random,
      maxActiveBytes: Math.max(PARTIAL_PIECE_BYTES, init.manifest.pieceLength),
      selfId: init.node.peerId.toString()
    })
    this.requests = new RequestLoop({
      picker: this.picker,
      sessions: this.sessions,
      done: () => this.completed,
      requestTimeout: init.requestTimeout,
      log: this.log,
      now: this.now
    })
    this.chokes = new ChokeRounds({
      choker: swarmChoker(init.manifest.pieceLength, { now: this.now, random: init.random, ...init.choker }),
      sessions: this.sessions,
      seeding: () => this.completed,
      throttle: this.throttle
    })
    this.assembly = new PieceAssembly({
      manifest: init.manifest,
      store: init.store,
      picker: this.picker,
      pieceSize: this.pieceSize,
      maxStrikes: init.maxStrikes,
      log: this.log,
      delegate: {
        pieceVerified: async (piece) => { await this.pieceDone(piece) },
        pieceFailed: () => { this.requests.fillAll() },
        peerBanned: (peer) => { this.exchange.forget(peer) },
        closePeer: (peer, reason) => { this.sessions.get(peer)?.close(reason) },
        error: (err) => { this.safeDispatchEvent('error', { detail: err }) }
      }
    })
    this.completed = init.seeding === true
  }

  get downloaded (): number {
    return this.transfer.downloaded
  }

  get uploaded (): number {
    return this.transfer.uploaded
  }

  /** Bytes received that were of no use (blocks nobody wanted, pieces that failed). */
  get wasted (): number {
    return this.assembly.wasted
  }

  /** Pieces that failed their hash check. */
  get hashFailures (): number {
    return this.assembly.hashFailures
  }

  get seeding (): boolean {
    return this.completed
  }

  get path (): string {
    return this.store.path
  }

  /** Sessions open now. */
  get peerCount (): number {
    return this.sessions.size
  }

  /** The pieces we hold, verified (read-only: the picker owns it). */
  get have (): Bitfield {
    return this.picker.have
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    await this.node.handle(WIRE_PROTOCOL, (stream, connection) => {
      // over a stranger's relay (a few hundred KiB allowed) we only signal: see net/relay.ts
      if (!carriesData(connection)) { stream.abort(new Error('relayed connection too limited to carry data')); return }
      this.accept(stream, connection.remotePeer.toString(), 'inbound', 'incoming', connection)
    }, { maxInboundStreams: 4, runOnLimitedConnection: true })
    this.node.addEventListener('peer:identify', this.onIdentify)
    this.node.addEventListener('connection:open', this.onConnection)
    this.timers.push(setInterval(() => { this.rechoke() }, this.chokes.rechokeInterval))
    this.timers.push(setInterval(() => { this.tick() }, TICK_MS))
    for (const t of this.timers) t.unref?.()
    // nothing to fetch (an empty file): finish now, not when some peer says something
    if (!this.completed && this.picker.isComplete()) await this.complete()
  }

  /**
   * Stops trading: no more sessions, and every piece already being verified is written (or
   * failed). The store stays open, so that what is on disk can be recorded for a later run.
   */
  async drain (): Promise<void> {
    if (this.running) {
      this.running = false
      for (const t of this.timers) clearInterval(t)
      this.timers = []
      this.node.removeEventListener('peer:identify', this.onIdentify)
      this.node.removeEventListener('connection:open', this.onConnection)
      await this.node.unhandle(WIRE_PROTOCOL).catch(() => {})
      for (const s of [...this.sessions.values()]) this.closeQuietly(s, 'we stopped')
    }
    await this.assembly.settled()
  }

  async stop (): Promise<void> {
    await this.drain()
    await this.store.close()
  }

  /**
   * `source` told us of `peers`: the peer book keeps them (a peer known already keeps its first
   * source), and we dial those it passes on that we are not yet talking to.
   */
  addPeers (peers: PeerAddress[], source: PeerSource): void {
    this.dialPeers(this.book.add(peers, source), source)
  }

  /** Dials peers the book passed on that we are not yet talking to. */
  private dialPeers (peers: PeerAddress[], source: PeerSource): void {
    for (const p of peers) {
      if (!this.running) return
      if (this.sessions.has(p.peerId) || this.dialing.has(p.peerId) || this.assembly.banned.has(p.peerId)) continue
      if (!this.slots.mayDial(this.dialing.size)) return
      void this.dial(p, source)
    }
  }

  private async dial (p: PeerAddress, source: PeerSource): Promise<void> {
    this.dialing.add(p.peerId)
    try {
      // addresses from trackers, gossip and the DHT can name anyone's ip:port: the guard decides
      const connection = await dialGuarded(this.node, this.dialGuard, p, { timeout: 10_000 })
      if (!carriesData(connection)) {
        this.unreachable.dialFailed(p.peerId, true)
        throw new Error(`reached only through a relay that does not carry data (${connection.remoteAddr.toString()})`)
      }
      const stream = await connection.newStream(WIRE_PROTOCOL, { signal: AbortSignal.timeout(10_000), runOnLimitedConnection: true })
      this.dialing.delete(p.peerId)
      this.unreachable.reached(p.peerId)
      if (!this.running) { stream.abort(new Error('swarm stopped')); return }
      this.accept(stream, p.peerId, 'outbound', source, connection)
    } catch (err) {
      // an address that does not answer is not passed on to others
      this.exchange.forget(p.peerId)
      this.unreachable.dialFailed(p.peerId)
      // refusals are the guard at work (an attack sends them by the hundred): not worth a line each
      if (!(err instanceof DialRefusedError)) this.log(`dial ${shortId(p.peerId)} (from ${source}) failed: ${(err as Error).message}`)
    } finally {
      this.dialing.delete(p.peerId)
    }
  }

  private accept (stream: Stream, remotePeer: string, direction: 'inbound' | 'outbound', source: PeerSource, connection: Pick<Connection, 'remoteAddr'>): void {
    if (!this.running) { stream.abort(new Error('swarm stopped')); return }
    const kind = connectionKind(connection)
    if (this.assembly.banned.has(remotePeer)) { stream.abort(new Error('banned')); return }
    // a relayed peer's connection comes from the relay's address: not the peer's, not counted as its
    const ip = kind === 'relayed' ? undefined : this.remoteIp(remotePeer)
    // a direct session with a peer we reached through a relay before: DCUtR (or a dial) upgraded it
    const via: PeerVia = kind === 'relayed' ? 'relayed' : this.wasRelayed.has(remotePeer) ? 'hole-punched' : 'direct'
    if (kind === 'relayed') this.wasRelayed.add(remotePeer)
    this.unreachable.reached(remotePeer)
    const existing = this.sessions.get(remotePeer)
    if (existing != null) {
      // both ends dialled at once, or a reconnect: the registry's rule says which one stays
      if (!this.sessions.keepsNew(existing, direction)) { stream.abort(new Error('duplicate session')); return }
      this.closeQuietly(existing, 'replaced by another connection')
    } else if (!this.slots.admit(remotePeer, ip)) {
      stream.abort(new Error('too many peers'))
      return
    }
    const session = new PeerSession({
      stream,
      remotePeer,
      geometry: { manifest: this.manifestBytes, pieceCount: this.count, pieceSize: this.pieceSize },
      delegate: this,
      localHave: () => this.picker.have,
      log: this.log,
      throttle: this.throttle,
      downloadThrottle: this.downloadThrottle,
      now: this.now
    })
    this.sessions.add(session, { ip, source, via, address: withoutPeerId(connection.remoteAddr.toString()) })
    this.exchange.sessionOpened(remotePeer)
    session.start()
    this.safeDispatchEvent('peer:connect', { detail: { peerId: remotePeer, source, via } })
  }

  /** The remote IP address of our connection to `peerId` (Admission counts slots per address). */
  private remoteIp (peerId: string): string | undefined {
    try {
      for (const c of this.node.getConnections(peerIdFromString(peerId))) {
        const ip = ipOf(c.remoteAddr)
        if (ip != null) return ip
      }
    } catch {}
    return undefined
  }

  // --- SessionDelegate: what the swarm does with each valid message -------------------------

  onHaveState (session: PeerSession): void {
    // a member we are talking to is worth passing on to others (peer exchange); if identify
    // has not told us its listen addresses yet, onIdentify will
    void this.listenAddrs(session.remotePeer).then(multiaddrs => { this.exchange.learned(session.remotePeer, multiaddrs) })
    this.requests.haveState(session)
    // two seeders have nothing to say to each other
    if (this.completed && session.peerHasAll) this.closeQuietly(session, BOTH_SEEDS)
  }

  onHave (session: PeerSession, piece: number): void {
    this.requests.have(session, piece)
    if (this.completed && session.peerHasAll) this.closeQuietly(session, BOTH_SEEDS)
  }

  onInterest (session: PeerSession): void {
    this.chokes.interested(session)
  }

  onChoke (session: PeerSession, dropped: BlockSpec[]): void {
    this.requests.choked(session, dropped)
  }

  onUnchoke (session: PeerSession): void {
    this.requests.fill(session)
  }

  onReject (session: PeerSession, block: BlockSpec): void {
    this.requests.rejected(session, block)
  }

  onBlock (session: PeerSession, piece: number, offset: number, data: Uint8ArrayList): void {
    this.transfer.received(data.byteLength, this.sessions.sourceOf(session.remotePeer) ?? 'incoming', session)
    // the picker decides whether the block was wanted; the assembly keeps it if so (see assembly.ts)
    const r = this.assembly.receive(session.remotePeer, piece, offset, data)
    if (!r.accepted) {
      this.requests.fill(session)
      return
    }
    this.requests.delivered(session)
    // endgame: the same block was asked of others; tell them not to bother (BEP 3 "cancel")
    for (const c of r.cancels) this.sessions.get(c.peerId)?.cancel(c.block)
    // after the cancels: a piece's check starts by copying it (WebCrypto), long for a big piece
    if (r.pieceComplete) void this.assembly.check(piece)
    this.requests.fill(session)
  }

  hasPiece (piece: number): boolean {
    return this.picker.have.get(piece)
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    return await this.cache.readBlock(piece, offset, length)
  }

  onUpload (session: PeerSession, bytes: number): void {
    this.transfer.sent(bytes, session)
  }

  onPeers (session: PeerSession, raw: WirePeer[]): void {
    // rate-limited, checked, and what is new dialled through addPeers (see PeerExchange)
    this.exchange.received(session.remotePeer, raw)
  }

  onClose (session: PeerSession, reason: string | undefined): void {
    if (!this.sessions.remove(session)) return
    this.exchange.sessionClosed(session.remotePeer)
    this.requests.sessionClosed(session)
    this.safeDispatchEvent('peer:disconnect', { detail: { peerId: session.remotePeer, reason: reason ?? this.quietReasons.get(session) } })
    this.requests.fillAll()
  }

  /** Closes a session without a word in the log; peer:disconnect still says why. */
  private closeQuietly (session: PeerSession, why: string): void {
    if (!session.closed) this.quietReasons.set(session, why)
    session.close()
  }

  // --- downloading ---------------------------------------------------------------------------

  /** A piece verified and written (see PieceAssembly): every peer hears of it; the last one completes the download. */
  private async pieceDone (piece: number): Promise<void> {
    for (const s of this.sessions.values()) {
      s.have(piece)
      this.requests.updateInterest(s)
    }
    this.safeDispatchEvent('piece', { detail: piece })
    if (this.picker.isComplete()) await this.complete()
  }

  /** Bytes of the pieces we download: the whole manifest, or the selected files. */
  private wantedBytes (): number {
    if (this.wanted === undefined) return this.manifest.length
    let bytes = 0
    for (let i = 0; i < this.count; i++) if (this.wanted.get(i)) bytes += this.pieceSize(i)
    return bytes
  }

  private async complete (): Promise<void> {
    if (this.completing || this.completed) return
    this.completing = true
    // renames the part file into place and keeps it open read-only, so we go on seeding from it
    await this.store.finalize()
    this.completed = true
    for (const s of [...this.sessions.values()]) if (s.peerHasAll) this.closeQuietly(s, BOTH_SEEDS)
    this.safeDispatchEvent('complete', { detail: { path: this.store.path, bytes: this.wantedBytes() } })
    this.rechoke()
  }

  /** BEP 3's tit-for-tat, every rechoke interval and when we complete (see ChokeRounds). */
  private rechoke (): void {
    if (this.running) this.chokes.rechoke()
  }

  /** Identify told us a connected peer's listen addresses: peer exchange may pass them on. */
  /**
   * A direct connection to a peer we trade with through a relay (DCUtR upgraded it, or one of us
   * dialled the other directly): the session moves to it. We open the stream if we dialled the
   * connection; the other end does the same on its side of its own, and the registry's rule
   * (keepsNew) keeps one session either way.
   */
  private readonly onConnection = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    const peerId = connection.remotePeer.toString()
    if (!this.running || connectionKind(connection) !== 'direct' || connection.direction !== 'outbound') return
    if (!this.wasRelayed.has(peerId) || this.sessions.viaOf(peerId) === 'hole-punched' || this.sessions.viaOf(peerId) === 'direct') return
    void (async () => {
      try {
        const stream = await connection.newStream(WIRE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
        if (this.sessions.viaOf(peerId) !== 'relayed' && this.sessions.has(peerId)) { stream.abort(new Error('already direct')); return }
        this.accept(stream, peerId, 'outbound', this.sessions.sourceOf(peerId) ?? 'incoming', connection)
      } catch (err) {
        this.log(`direct connection to ${shortId(peerId)}: no session on it: ${(err as Error).message}`)
      }
    })()
  }

  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const peerId = evt.detail.peerId.toString()
    if (this.sessions.has(peerId)) this.exchange.learned(peerId, evt.detail.listenAddrs.map(a => a.toString()))
  }

  /** A connected peer's listen addresses, as identify reported them (not its ephemeral port). */
  private async listenAddrs (peerId: string): Promise<string[]> {
    try {
      const peer = await this.node.peerStore.get(peerIdFromString(peerId))
      return peer.addresses.map(a => a.multiaddr.toString())
    } catch {
      return []
    }
  }

  private tick (): void {
    // peer exchange (as BEP 11, over our wire): sessions due a `peers` message get one
    this.exchange.tick(this.sessions.values())
    // between rechokes: trials that were not answered end, shares follow what each peer sent
    // us, a seed turn that is over passes on
    this.chokes.tick()
    for (const s of this.sessions.values()) {
      // requests that timed out or were passed over go to others; a pause that has ended, a probe
      this.requests.expire(s)
      s.keepAlive(KEEP_ALIVE_MS, DEAD_PEER_MS)
    }
    // sessions useless for long yield their slot even when the swarm is not full
    this.slots.evictIdle()
    this.requests.fillAll()
    this.warnIfCutOff()
  }

  /**
   * Still downloading, peers known, and none of them reachable for UNREACHABLE_WARN_MS: say so
   * once (and again after a session came and went), rather than wait in silence. This is what
   * two peers behind NATs that keep them apart see, with no relay that carries data.
   */
  private warnIfCutOff (): void {
    const line = this.unreachable.check(this.now(), this.completed ? 1 : this.sessions.size)
    if (line !== undefined) this.log(line)
  }


  stats (): SwarmStats {
    return swarmStats({
      transfer: this.transfer,
      sessions: this.sessions.values(),
      sources: this.sessions.sourceCounts(),
      reached: this.sessions.viaCounts(),
      manifest: this.manifest,
      have: this.picker.have,
      wanted: this.wanted,
      seeding: this.completed,
      pieceSize: this.pieceSize,
      assembly: this.assembly,
      availability: (piece) => this.picker.availability(piece)
    })
  }

  /** Each connected peer: where it is, what it has, the rates and the choke flags (see PeerInfo). */
  peerInfos (): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const s of this.sessions.values()) {
      const id = s.remotePeer
      out.push(peerInfo(s, {
        address: this.sessions.addressOf(id) ?? '',
        source: this.sessions.sourceOf(id) ?? 'incoming',
        via: this.sessions.viaOf(id) ?? 'direct',
        pieces: this.count,
        rates: this.transfer.ratesOf(s),
        ...this.chokes.flagsOf(s)
      }))
    }
    return out
  }

  /**
   * The pieces at a glance: which we have (a copy), which are being fetched (a block requested or
   * received, not yet verified), and how many connected peers have each (capped at 255).
   */
  pieceMap (): PieceMap {
    return { pieces: this.count, have: this.picker.have.clone(), inFlight: this.picker.activePieceIndexes(), availability: this.picker.availabilityMap() }
  }
}
