/**
 * The swarm: one manifest's peer sessions, tied to the piece picker, the choker and the piece
 * store. It owns the timers (rechoke, request timeouts, keep-alives) and the wire protocol
 * handler; policy lives in picker/ and choker/, bytes on the wire in session/ and wire/, piece
 * assembly, hash checks and bans in assembly.ts, peer exchange in exchange-peers.ts, the open
 * sessions (and which of two to the same peer is kept) in sessions.ts.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import type { IdentifyResult, Libp2p, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { Uint8ArrayList } from 'uint8arraylist'
import { Bitfield } from '../bitfield.js'
import { DialGuard } from '../discovery/dial-guard.js'
import { DialRefusedError, dialGuarded } from '../discovery/guarded-dial.js'
import { emptySources, type PeerAddress, type PeerSource } from '../discovery/types.js'
import { Choker, type ChokerInit, type ChokerPeer, type UploadShare } from '../choker/choker.js'
import { pieceCount, pieceSize, type Manifest } from '../manifest/manifest.js'
import { PiecePicker, requestDepth } from '../picker/picker.js'
import { PeerSession, shortId, type SessionDelegate } from '../session/session.js'
import { RateMeter } from '../stats/rate.js'
import { Throttle } from '../throttle.js'
import { LogLimiter } from '../log-limiter.js'
import { ipOf } from '../net/pending-inbound.js'
import { Admission, type AdmissionInit, type SessionFacts } from './admission.js'
import { PieceAssembly } from './assembly.js'
import { PeerExchange } from './exchange-peers.js'
import { SessionRegistry } from './sessions.js'
import { PieceCache } from '../storage/piece-cache.js'
import type { PieceStore } from '../storage/storage.js'
import { WIRE_PROTOCOL, type BlockSpec, type WirePeer } from '../wire/codec.js'
import { RequestBackoff } from './request-backoff.js'

export { emptySources, PEER_SOURCES, type PeerSource } from '../discovery/types.js'

export interface SwarmInit {
  node: Libp2p
  manifest: Manifest
  cid: CID
  store: PieceStore
  /** pieces already verified on disk (all of them when seeding) */
  have?: Bitfield
  /** we start as a seeder: nothing to download, nothing to finalize */
  seeding?: boolean
  choker?: ChokerInit
  /** most sessions at once (default 50) */
  maxPeers?: number
  /** who may hold a session slot when full: grace period, idle eviction, share per IP (see Admission) */
  admission?: Omit<AdmissionInit, 'maxPeers'>
  /** which told-of addresses may be dialled (per-address backoff, peer ids per address); default a new one */
  dialGuard?: DialGuard
  /** a request not answered within this many ms is given to another peer (default 30_000) */
  requestTimeout?: number
  /** upload cap in bytes/s for all sessions together (default: none) */
  maxUploadRate?: number
  /** ms between peer-exchange messages to each peer (default 30_000; the first goes after ~1 s) */
  pexInterval?: number
  /** bad pieces a peer may have had a hand in before it is banned (default 2) */
  maxStrikes?: number
  log?: (msg: string) => void
  now?: () => number
  random?: () => number
}

export interface SwarmStats {
  peers: number
  unchoking: number
  unchokedBy: number
  interested: number
  have: number
  pieces: number
  downloaded: number
  uploaded: number
  downloadRate: number
  uploadRate: number
  left: number
  wasted: number
  hashFailures: number
  /** connected peers by how we learned of them */
  sources: Record<PeerSource, number>
  /** bytes downloaded, by how we learned of the peer that sent them */
  downloadedFrom: Record<PeerSource, number>
  /** peers banned for sending data that failed verification */
  banned: number
}

export interface SwarmEvents {
  'piece': CustomEvent<number>
  'complete': CustomEvent<{ path: string, bytes: number }>
  'peer:connect': CustomEvent<{ peerId: string, source: PeerSource }>
  'peer:disconnect': CustomEvent<{ peerId: string, reason?: string }>
  'error': CustomEvent<Error>
}

/** pieces a leecher may take in one turn of a seed slot (libtorrent's seeding_piece_quota) */
const SEED_PIECE_QUOTA = 20
/** pieces a peer on trial may take before it must have sent something back (see Choker.review) */
const TRIAL_PIECE_QUOTA = 4
const TICK_MS = 1000
/**
 * Pieces being assembled hold at most this many bytes of buffers (or one piece, if larger): a
 * peer that sends every block of a piece but the last cannot make us start piece after piece.
 */
const PARTIAL_PIECE_BYTES = 64 * 1024 * 1024
/** A request the peer passed over while answering one sent this much later is given up on. */
const SKIP_GRACE_MS = 2000
/** A peer's first SLOW_START_BYTES are requested as if it sent SLOW_START_RATE (16 blocks of 64 KiB deep). */
const SLOW_START_BYTES = 4 * 1024 * 1024
const SLOW_START_RATE = 1024 * 1024
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
  private readonly choker: Choker
  /** the open session with each peer, with its remote IP and how we learned of the peer */
  private readonly sessions: SessionRegistry<PeerSession>
  private readonly dialing = new Set<string>()
  private readonly dialGuard: DialGuard
  /** peer exchange: what we gossip, to whom and when, and what we hear */
  private readonly exchange: PeerExchange
  /** piece buffers, hash checks, and strikes and bans for bad data */
  private readonly assembly: PieceAssembly
  /** peers that rejected requests or let them time out are asked again only later */
  private readonly backoff: RequestBackoff
  private readonly downloadedFrom = emptySources()
  private readonly log: (msg: string) => void
  private readonly now: () => number
  private readonly maxPeers: number
  private readonly admission: Admission
  /** refusals and evictions: an attacker decides how many there are */
  private readonly admissionLog: LogLimiter
  private readonly requestTimeout: number
  private readonly throttle: Throttle
  private readonly manifestBytes: Uint8Array
  private readonly count: number
  private readonly downRate: RateMeter
  private readonly upRate: RateMeter
  private timers: Array<ReturnType<typeof setInterval>> = []
  private running = false
  private completing = false
  private completed = false
  downloaded = 0
  uploaded = 0

  constructor (init: SwarmInit) {
    super()
    this.node = init.node
    this.manifest = init.manifest
    this.cid = init.cid
    this.store = init.store
    this.cache = new PieceCache(init.store, init.manifest.pieceLength)
    this.log = init.log ?? (() => {})
    this.now = init.now ?? Date.now
    this.maxPeers = init.maxPeers ?? 50
    this.sessions = new SessionRegistry({ self: init.node.peerId.toString() })
    this.admission = new Admission({ ...init.admission, maxPeers: this.maxPeers })
    this.admissionLog = new LogLimiter({ log: this.log, now: this.now })
    this.requestTimeout = init.requestTimeout ?? 30_000
    this.throttle = new Throttle({ rate: init.maxUploadRate ?? 0 })
    this.backoff = new RequestBackoff({ now: this.now })
    this.exchange = new PeerExchange({
      self: init.node.peerId.toString(),
      interval: init.pexInterval,
      log: this.log,
      now: this.now,
      random: init.random,
      delegate: {
        send: (peer, peers) => { this.sessions.get(peer)?.sendPeers(peers) },
        discovered: (peers) => { this.addPeers(peers, 'pex') }
      }
    })
    this.dialGuard = init.dialGuard ?? new DialGuard({ now: this.now })
    this.manifestBytes = init.cid.bytes
    this.count = pieceCount(init.manifest)
    this.picker = new PiecePicker({
      pieceCount: this.count,
      pieceLength: init.manifest.pieceLength,
      totalLength: init.manifest.length,
      have: init.have,
      random: init.random,
      maxActiveBytes: Math.max(PARTIAL_PIECE_BYTES, init.manifest.pieceLength)
    })
    this.choker = new Choker({
      now: this.now,
      random: init.random,
      seedQuota: SEED_PIECE_QUOTA * init.manifest.pieceLength,
      trialQuota: TRIAL_PIECE_QUOTA * init.manifest.pieceLength,
      ...init.choker
    })
    this.downRate = new RateMeter({ windowMs: 5_000, now: this.now })
    this.upRate = new RateMeter({ windowMs: 5_000, now: this.now })
    this.assembly = new PieceAssembly({
      manifest: init.manifest,
      store: init.store,
      picker: this.picker,
      maxStrikes: init.maxStrikes,
      log: this.log,
      delegate: {
        pieceVerified: async (piece) => { await this.pieceDone(piece) },
        pieceFailed: () => { this.fillAll() },
        peerBanned: (peer) => { this.exchange.forget(peer) },
        closePeer: (peer, reason) => { this.sessions.get(peer)?.close(reason) },
        error: (err) => { this.safeDispatchEvent('error', { detail: err }) }
      }
    })
    this.completed = init.seeding === true
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
      this.accept(stream, connection.remotePeer.toString(), 'inbound', 'incoming')
    }, { maxInboundStreams: 4 })
    this.node.addEventListener('peer:identify', this.onIdentify)
    this.timers.push(setInterval(() => { this.rechoke() }, this.choker.rechokeInterval))
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
      await this.node.unhandle(WIRE_PROTOCOL).catch(() => {})
      for (const s of [...this.sessions.values()]) s.close()
    }
    await this.assembly.settled()
  }

  async stop (): Promise<void> {
    await this.drain()
    await this.store.close()
  }

  /** Dials peers we are not yet talking to, remembering where we heard of them. */
  addPeers (peers: PeerAddress[], source: PeerSource): void {
    const self = this.node.peerId.toString()
    for (const p of peers) {
      if (!this.running) return
      if (p.peerId === self || this.sessions.has(p.peerId) || this.dialing.has(p.peerId) || this.assembly.banned.has(p.peerId)) continue
      if (this.sessions.size + this.dialing.size >= this.maxPeers && !this.roomByEviction()) return
      void this.dial(p, source)
    }
  }

  private async dial (p: PeerAddress, source: PeerSource): Promise<void> {
    this.dialing.add(p.peerId)
    try {
      // addresses from trackers, gossip and the DHT can name anyone's ip:port: the guard decides
      const connection = await dialGuarded(this.node, this.dialGuard, p, { timeout: 10_000 })
      const stream = await connection.newStream(WIRE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      this.dialing.delete(p.peerId)
      if (!this.running) { stream.abort(new Error('swarm stopped')); return }
      this.accept(stream, p.peerId, 'outbound', source)
    } catch (err) {
      // an address that does not answer is not passed on to others
      this.exchange.forget(p.peerId)
      // refusals are the guard at work (an attack sends them by the hundred): not worth a line each
      if (!(err instanceof DialRefusedError)) this.log(`dial ${shortId(p.peerId)} (from ${source}) failed: ${(err as Error).message}`)
    } finally {
      this.dialing.delete(p.peerId)
    }
  }

  private accept (stream: Stream, remotePeer: string, direction: 'inbound' | 'outbound', source: PeerSource): void {
    if (!this.running) { stream.abort(new Error('swarm stopped')); return }
    if (this.assembly.banned.has(remotePeer)) { stream.abort(new Error('banned')); return }
    const existing = this.sessions.get(remotePeer)
    if (existing != null) {
      // both ends dialled at once, or a reconnect: the registry's rule says which one stays
      if (!this.sessions.keepsNew(existing, direction)) { stream.abort(new Error('duplicate session')); return }
      existing.close()
    } else if (this.sessions.size >= this.maxPeers && !this.makeRoom(remotePeer)) {
      stream.abort(new Error('too many peers'))
      return
    }
    const session = new PeerSession({
      stream,
      remotePeer,
      geometry: { manifest: this.manifestBytes, pieceCount: this.count, pieceSize: (i) => pieceSize(this.manifest, i) },
      delegate: this,
      localHave: () => this.picker.have,
      log: this.log,
      throttle: this.throttle,
      now: this.now
    })
    this.sessions.add(session, { ip: this.remoteIp(remotePeer), source })
    this.exchange.sessionOpened(remotePeer)
    session.start()
    this.safeDispatchEvent('peer:connect', { detail: { peerId: remotePeer, source } })
  }

  // --- admission: who holds the session slots (policy in admission.ts) ------------------------

  private remoteIp (peerId: string): string | undefined {
    try {
      for (const c of this.node.getConnections(peerIdFromString(peerId))) {
        const ip = ipOf(c.remoteAddr)
        if (ip != null) return ip
      }
    } catch {}
    return undefined
  }

  /** Full: may a dial go ahead because an idle session would yield its slot to it? */
  private roomByEviction (): boolean {
    return this.admission.evictable(this.sessions.facts(), this.now()).length > this.sessions.size + this.dialing.size - this.maxPeers
  }

  /** Full: closes the least useful session for `newcomer`, or says (rate-limited) why not. */
  private makeRoom (newcomer: string): boolean {
    const d = this.admission.admit({ id: newcomer, ip: this.remoteIp(newcomer) }, this.sessions.facts(), this.now())
    if (!d.admit) {
      this.admissionLog.log('refuse', `refused a session with ${shortId(newcomer)}: ${d.reason}`)
      return false
    }
    if (d.evict != null) this.evict(d.evict, `to make room for ${shortId(newcomer)}`)
    return true
  }

  private evict (f: SessionFacts, why: string): void {
    const session = this.sessions.get(f.id)
    if (session == null) return
    const now = this.now()
    const idleFor = Math.round((now - Math.max(f.connectedAt, f.lastBytesAt)) / 1000)
    this.admissionLog.log('evict', `evicted ${shortId(f.id)}${f.ip != null ? ` (${f.ip})` : ''}: ${f.interested ? 'no' : 'no interest either way and no'} bytes for ${idleFor} s, ${why}`)
    // quietly: the reason is logged above, at most once per interval however many there are
    session.close()
  }

  // --- SessionDelegate: what the swarm does with each valid message -------------------------

  onHaveState (session: PeerSession): void {
    // a member we are talking to is worth passing on to others (peer exchange); if identify
    // has not told us its listen addresses yet, onIdentify will
    void this.listenAddrs(session.remotePeer).then(multiaddrs => { this.exchange.learned(session.remotePeer, multiaddrs) })
    const has = session.peerHas as Bitfield
    this.picker.addPeer(session.remotePeer, has.isComplete() ? 'all' : has.count() === 0 ? 'none' : has)
    this.updateInterest(session)
    // two seeders have nothing to say to each other
    if (this.completed && session.peerHasAll) session.close()
  }

  onHave (session: PeerSession, piece: number): void {
    this.picker.peerHave(session.remotePeer, piece)
    this.updateInterest(session)
    if (this.completed && session.peerHasAll) session.close()
  }

  onInterest (session: PeerSession): void {
    if (!session.peerInterested || !session.amChoking) return
    const peers = this.chokerPeers()
    const peer = peers.find(p => p.id === session.remotePeer)
    // a free upload slot goes at once only to a peer that uploads to us (or, seeding, to whoever
    // asks); anyone else waits for the rechoke: a free-rider kept such slots
    if (peer !== undefined && this.choker.admit(peer, peers, this.completed)) {
      this.applyShare(session, this.choker.uploadShare(peer.id))
      session.unchoke()
    }
  }

  onChoke (session: PeerSession, dropped: BlockSpec[]): void {
    for (const b of dropped) this.picker.requestFailed(session.remotePeer, b)
    this.fillAll()
  }

  onUnchoke (session: PeerSession): void {
    this.fillRequests(session)
  }

  onReject (session: PeerSession, block: BlockSpec): void {
    this.picker.requestFailed(session.remotePeer, block)
    this.refused(session, 'rejected a request')
    this.fillAll()
  }

  /**
   * The peer refused a request (reject or timeout): we stop asking it for a while, so that a
   * peer that rejects everything does not keep us in a request/reject loop; once it refuses a
   * probe too we are not interested in it meanwhile (it is useless to us). See RequestBackoff.
   */
  private refused (session: PeerSession, what: string): void {
    if (!this.backoff.refused(session.remotePeer)) return
    const n = this.backoff.episodes(session.remotePeer)
    if (n > 1) this.log(`${shortId(session.remotePeer)} ${what} again (${n} times in a row): not asking it for a while`)
    this.updateInterest(session)
  }

  onBlock (session: PeerSession, piece: number, offset: number, data: Uint8ArrayList): void {
    this.downloaded += data.byteLength
    this.downloadedFrom[this.sessions.sourceOf(session.remotePeer) ?? 'incoming'] += data.byteLength
    this.downRate.add(data.byteLength)
    // the picker decides whether the block was wanted; the assembly keeps it if so (see assembly.ts)
    const r = this.assembly.receive(session.remotePeer, piece, offset, data)
    if (!r.accepted) {
      this.fillRequests(session)
      return
    }
    this.backoff.delivered(session.remotePeer)
    // endgame: the same block was asked of others; tell them not to bother (BEP 3 "cancel")
    for (const c of r.cancels) this.sessions.get(c.peerId)?.cancel(c.block)
    // after the cancels: a piece's check starts by copying it (WebCrypto), long for a big piece
    if (r.pieceComplete) void this.assembly.check(piece)
    this.fillRequests(session)
  }

  hasPiece (piece: number): boolean {
    return this.picker.have.get(piece)
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Uint8Array> {
    return await this.cache.readBlock(piece, offset, length)
  }

  onUpload (_session: PeerSession, bytes: number): void {
    this.uploaded += bytes
    this.upRate.add(bytes)
  }

  onPeers (session: PeerSession, raw: WirePeer[]): void {
    // rate-limited, checked, and what is new dialled through addPeers (see PeerExchange)
    this.exchange.received(session.remotePeer, raw)
  }

  onClose (session: PeerSession, reason: string | undefined): void {
    if (!this.sessions.remove(session)) return
    this.exchange.sessionClosed(session.remotePeer)
    this.backoff.forget(session.remotePeer)
    this.picker.removePeer(session.remotePeer)
    this.safeDispatchEvent('peer:disconnect', { detail: { peerId: session.remotePeer, reason } })
    this.fillAll()
  }

  // --- downloading ---------------------------------------------------------------------------

  /** A piece verified and written (see PieceAssembly): every peer hears of it; the last one completes the download. */
  private async pieceDone (piece: number): Promise<void> {
    for (const s of this.sessions.values()) {
      s.have(piece)
      this.updateInterest(s)
    }
    this.safeDispatchEvent('piece', { detail: piece })
    if (this.picker.isComplete()) await this.complete()
  }

  private async complete (): Promise<void> {
    if (this.completing || this.completed) return
    this.completing = true
    // renames the part file into place and keeps it open read-only, so we go on seeding from it
    await this.store.finalize()
    this.completed = true
    for (const s of [...this.sessions.values()]) if (s.peerHasAll) s.close()
    this.safeDispatchEvent('complete', { detail: { path: this.store.path, bytes: this.manifest.length } })
    this.rechoke()
  }

  private updateInterest (session: PeerSession): void {
    if (!session.haveStateReceived) return
    const interesting = !this.completed && this.picker.isInteresting(session.remotePeer) && !this.backoff.useless(session.remotePeer)
    session.setInterested(interesting)
    if (interesting) this.fillRequests(session)
  }

  private fillRequests (session: PeerSession): void {
    if (session.closed || session.peerChoking || !session.amInterested || this.completed) return
    if (!this.backoff.mayRequest(session.remotePeer)) return
    // keep about one second of this peer's rate in flight (at least a few blocks); until the
    // peer has sent a few MiB its rate says little, so start as if it were fast (slow start
    // from 4 blocks costs many round trips on a fast link)
    const rate = session.down.total < SLOW_START_BYTES ? Math.max(session.down.rate(), SLOW_START_RATE) : session.down.rate()
    // a peer that refused lately gets only a small probe until it delivers again
    const depth = Math.min(requestDepth(rate), this.backoff.depthLimit(session.remotePeer))
    const want = depth - this.picker.inFlight(session.remotePeer)
    // top the pipeline up in batches, not one request per block received
    if (want <= 0 || (want < Math.ceil(depth / 4) && this.picker.inFlight(session.remotePeer) > 0)) return
    session.request(this.picker.pick(session.remotePeer, want))
  }

  private fillAll (): void {
    for (const s of this.sessions.values()) this.fillRequests(s)
  }

  // --- timers --------------------------------------------------------------------------------

  private chokerPeers (): ChokerPeer[] {
    const out: ChokerPeer[] = []
    for (const s of this.sessions.values()) {
      out.push({
        id: s.remotePeer,
        interested: s.peerInterested,
        downloadRate: s.down.rate(),
        downloaded: s.down.windowBytes(),
        uploadRate: s.up.rate(),
        uploaded: s.up.total,
        downloadedTotal: s.down.total,
        connectedAt: s.connectedAt,
        unchoked: !s.amChoking,
        unchokesUs: !s.peerChoking,
        amInterested: s.amInterested,
        lastBlockAt: s.lastBlockAt,
        requestedAt: s.oldestRequestAt()
      })
    }
    return out
  }

  /** BEP 3's tit-for-tat: every rechoke interval, the choker decides whom we upload to. */
  rechoke (): void {
    if (!this.running) return
    const decision = this.choker.rechoke(this.chokerPeers(), this.completed)
    for (const s of this.sessions.values()) {
      if (decision.unchoked.has(s.remotePeer)) {
        this.applyShare(s, decision.shares.get(s.remotePeer) ?? this.choker.uploadShare(s.remotePeer))
        s.unchoke()
      } else {
        s.choke()
      }
    }
  }

  /** The choker's share of our capped uplink for `session`: its weight, and a limit if capped. */
  private applyShare (session: PeerSession, share: UploadShare): void {
    const limit = share.capped && !this.throttle.unlimited ? this.throttle.rate * this.choker.offerFraction : undefined
    session.setUploadShare(share.weight, limit)
  }

  /** Identify told us a connected peer's listen addresses: peer exchange may pass them on. */
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
    // one view of the peers a tick (it walks every session's requests), updated as we choke
    const peers = this.chokerPeers()
    if (!this.completed) {
      for (const id of this.choker.review(peers)) {
        this.sessions.get(id)?.choke()
        const p = peers.find(p => p.id === id)
        if (p != null) p.unchoked = false
      }
      for (const [id, share] of this.choker.refreshShares(peers, false)) {
        const s = this.sessions.get(id)
        if (s != null) this.applyShare(s, share)
      }
    } else if (this.choker.seedTurnOver(peers)) {
      this.rechoke()
    }
    for (const s of this.sessions.values()) {
      const expired = s.expireRequests(this.requestTimeout)
      // requests it passed over while answering later ones count as timed out, at once
      const skipped = s.expireSkipped(SKIP_GRACE_MS)
      for (const b of expired) this.picker.requestFailed(s.remotePeer, b)
      for (const b of skipped) this.picker.requestFailed(s.remotePeer, b)
      if (expired.length > 0) this.refused(s, `let ${expired.length} requests time out`)
      else if (skipped.length > 0) this.refused(s, `passed over ${skipped.length} requests`)
      // a pause that has ended: interested again (a probe follows)
      else if (!s.amInterested) this.updateInterest(s)
      s.keepAlive(KEEP_ALIVE_MS, DEAD_PEER_MS)
    }
    // sessions useless for long yield their slot even when the swarm is not full
    for (const f of this.admission.idle(this.sessions.facts(), this.now())) this.evict(f, 'idle too long')
    this.fillAll()
  }

  stats (): SwarmStats {
    let unchoking = 0
    let unchokedBy = 0
    let interested = 0
    for (const s of this.sessions.values()) {
      if (!s.amChoking) unchoking++
      if (!s.peerChoking) unchokedBy++
      if (s.peerInterested) interested++
    }
    const sources = this.sessions.sourceCounts()
    const have = this.picker.have.count()
    let left = 0
    if (!this.completed) {
      for (let i = 0; i < this.count; i++) if (!this.picker.have.get(i)) left += pieceSize(this.manifest, i)
    }
    return {
      peers: this.sessions.size,
      unchoking,
      unchokedBy,
      interested,
      have,
      pieces: this.count,
      downloaded: this.downloaded,
      uploaded: this.uploaded,
      downloadRate: this.downRate.rate(),
      uploadRate: this.upRate.rate(),
      left,
      wasted: this.wasted,
      hashFailures: this.hashFailures,
      sources,
      downloadedFrom: { ...this.downloadedFrom },
      banned: this.assembly.banned.size
    }
  }
}
