/**
 * A peer session: one remote peer, one libp2p stream of the wire protocol, and the state of the
 * four flags BEP 3 defines for each end ("choked and interested"). The session validates every
 * message against that state and against the manifest's geometry; anything invalid closes this
 * session only, with a reason. What to do with valid messages (pick pieces, store blocks,
 * choke) is the swarm's business, reached through the SessionDelegate.
 */
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { Bitfield, InvalidBitfieldError } from '../bitfield.js'
import { RateMeter } from '../stats/rate.js'
import { Throttle, type ThrottleShare } from '../throttle.js'
import { Outbox } from './outbox.js'
import {
  encodeBitfield, encodeCancel, encodeChoke, encodeHandshake, encodeHave, encodeHaveAll, encodeHaves, encodeHaveNone,
  encodeInterested, encodeKeepAlive, encodeNotInterested, encodePeers, encodePiece, encodeReject, encodeRequest, encodeUnchoke,
  InvalidMessageError, MAX_BLOCK_LENGTH, MessageType, messageName, WIRE_VERSION, WireDecoder,
  type BlockSpec, type WireMessage, type WirePeer
} from '../wire/codec.js'

/** How many requests a peer may queue with us before it is cut off as a flood. */
export const MAX_QUEUED_REQUESTS = 512
/** Queued outgoing bytes that trigger a write at once. */
const FLUSH_BYTES = 128 * 1024
/**
 * A `have` with nothing else to go out waits this long for company (see have()); haves that
 * pile up past HAVE_BATCH go at once.
 */
export const HAVE_DELAY_MS = 50
const HAVE_BATCH = 1024
/** Outstanding requests we remember after a cancel or choke, so late blocks are not "unsolicited". */
const MAX_FORGIVEN = 4096

export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

export interface SessionGeometry {
  /** the manifest CID's bytes, sent and checked in the handshake */
  manifest: Uint8Array
  pieceCount: number
  pieceSize: (piece: number) => number
}

export interface SessionDelegate {
  /** the remote's have-state is known (bitfield, have-all or have-none) */
  onHaveState: (session: PeerSession) => void
  onHave: (session: PeerSession, piece: number) => void
  onInterest: (session: PeerSession) => void
  onChoke: (session: PeerSession, dropped: BlockSpec[]) => void
  onUnchoke: (session: PeerSession) => void
  onBlock: (session: PeerSession, piece: number, offset: number, data: Uint8ArrayList) => void
  onReject: (session: PeerSession, block: BlockSpec) => void
  /** do we hold this verified piece (so we may upload it)? */
  hasPiece: (piece: number) => boolean
  readBlock: (piece: number, offset: number, length: number) => Promise<Uint8Array>
  onUpload: (session: PeerSession, bytes: number) => void
  /** peer exchange: swarm members this peer knows (structure checked, contents not) */
  onPeers: (session: PeerSession, peers: WirePeer[]) => void
  onClose: (session: PeerSession, reason: string | undefined) => void
}

export interface PeerSessionInit {
  stream: Stream
  remotePeer: string
  geometry: SessionGeometry
  delegate: SessionDelegate
  /** our have-state to announce after the handshake */
  localHave: () => Bitfield
  log: (msg: string) => void
  /** the upload rate cap shared by every session of this peer */
  throttle?: Throttle
  /**
   * the download rate cap shared by every session of this peer: a session reads no further
   * until its bytes are due, and the stream's flow control makes the sender wait
   */
  downloadThrottle?: Throttle
  now?: () => number
}

const key = (piece: number, offset: number): string => `${piece}:${offset}`

/** The decoded wire message of one type. */
type Message<T extends MessageType> = Extract<WireMessage, { type: T }>

export class PeerSession {
  readonly remotePeer: string
  readonly stream: Stream
  /** who opened the stream: we did (outbound) or the remote did (inbound) */
  readonly direction: 'inbound' | 'outbound'
  readonly connectedAt: number
  /** BEP 3: "Connections start out choked and not interested." */
  amChoking = true
  amInterested = false
  peerChoking = true
  peerInterested = false
  peerHas: Bitfield | undefined
  peerHasAll = false
  /** ms of the last block received, or of the last unchoke from the peer, whichever later */
  lastBlockAt = 0
  /** ms of the last block received from the peer, and of the last sent to it (0: none yet) */
  lastDownloadAt = 0
  lastUploadAt = 0
  lastSentAt: number
  lastReceivedAt: number
  readonly down: RateMeter
  readonly up: RateMeter
  closed = false
  closeReason: string | undefined

  private readonly geometry: SessionGeometry
  private readonly delegate: SessionDelegate
  private readonly localHave: () => Bitfield
  private readonly log: (msg: string) => void
  /** this session's share of the upload cap; none without a cap (nothing to pay per block) */
  private readonly upload: ThrottleShare | undefined
  private readonly download: ThrottleShare | undefined
  /** ends a wait for the download throttle when the session closes */
  private readonly readAbort = new AbortController()
  /** the optimistic unchoke's own cap, on top of its share (see setUploadShare) */
  private limiter: Throttle | undefined
  private readonly now: () => number
  private readonly decoder = new WireDecoder()
  private handshaken = false
  private haveStateKnown = false
  /** requests we sent, by "piece:offset" → [block, sentAt]; in the order sent */
  readonly outstanding = new Map<string, { block: BlockSpec, sentAt: number }>()
  /** when the newest request the peer has answered was sent (see expireSkipped) */
  private answeredSentAt = 0
  private readonly forgiven = new Set<string>()
  private readonly incoming: BlockSpec[] = []
  private pumping = false
  private rejectedWhileChoked = 0
  private readonly outbox = new Outbox()
  private flushTimer: ReturnType<typeof setImmediate> | undefined
  /** haves waiting for other frames to go out with (see have()), and the timer that sends them alone */
  private lazyHaves: number[] = []
  private haveTimer: ReturnType<typeof setTimeout> | undefined

  constructor (init: PeerSessionInit) {
    this.stream = init.stream
    this.direction = init.stream.direction
    this.remotePeer = init.remotePeer
    this.geometry = init.geometry
    this.delegate = init.delegate
    this.localHave = init.localHave
    this.log = init.log
    this.upload = init.throttle == null || init.throttle.unlimited ? undefined : init.throttle.share()
    this.download = init.downloadThrottle == null || init.downloadThrottle.unlimited ? undefined : init.downloadThrottle.share()
    this.now = init.now ?? Date.now
    this.connectedAt = this.now()
    this.lastSentAt = this.connectedAt
    this.lastReceivedAt = this.connectedAt
    this.down = new RateMeter({ windowMs: 20_000, now: this.now })
    this.up = new RateMeter({ windowMs: 20_000, now: this.now })
  }

  /** Sends our handshake and have-state, then reads until the stream ends. */
  start (): void {
    this.send(encodeHandshake(this.geometry.manifest))
    const have = this.localHave()
    if (have.isComplete()) this.send(encodeHaveAll())
    else if (have.count() === 0) this.send(encodeHaveNone())
    else this.send(encodeBitfield(have.toBytes()))
    this.stream.addEventListener('close', (evt) => {
      const err = (evt as Event & { error?: Error }).error
      this.finish(err != null ? `stream closed: ${err.message}` : undefined)
    })
    void this.readLoop()
  }

  private async readLoop (): Promise<void> {
    try {
      for await (const chunk of this.stream) {
        if (this.closed) return
        this.lastReceivedAt = this.now()
        for (const msg of this.decoder.decode(chunk)) {
          this.handle(msg)
          if (this.closed) return
        }
        if (this.download !== undefined) {
          await this.download.take(chunk.byteLength, this.readAbort.signal)
          if (this.closed) return
        }
      }
      this.decoder.end()
      this.close() // the remote ended its side: end ours too, or the stream stays half open
    } catch (err) {
      if (this.closed) return
      const e = err as Error
      if (e instanceof InvalidMessageError || e instanceof ProtocolError || e instanceof InvalidBitfieldError || e.name === 'TruncatedFrameError') {
        this.close(`${e.name}: ${e.message}`)
      } else {
        // the stream failed, or handling a message did (a bug of ours): either way this
        // session is done; abort so that nothing is left half open
        this.finish(`stream error: ${e.message}`)
        this.stream.abort(e)
      }
    }
  }

  private violation (reason: string): never {
    throw new ProtocolError(reason)
  }

  /** A block the message names must lie inside a piece of the manifest, in one frame's length. */
  private checkBlock (b: BlockSpec, what: string): void {
    if (b.piece >= this.geometry.pieceCount) this.violation(`${what} for piece ${b.piece} of ${this.geometry.pieceCount}`)
    const size = this.geometry.pieceSize(b.piece)
    if (b.length === 0 || b.length > MAX_BLOCK_LENGTH) this.violation(`${what} of ${b.length} bytes (max ${MAX_BLOCK_LENGTH})`)
    if (b.offset + b.length > size) this.violation(`${what} past the end of piece ${b.piece}`)
  }

  /**
   * Dispatches one inbound message to its handler. Nothing but the handshake may come first; the
   * switch only narrows the message's type for its handler (one handler per wire message).
   */
  private handle (msg: WireMessage): void {
    if (!this.handshaken && msg.type !== MessageType.Handshake) this.violation(`${messageName(msg.type)} before handshake`)
    switch (msg.type) {
      case MessageType.Handshake: this.onHandshake(msg); break
      case MessageType.Bitfield: this.onBitfield(msg); break
      case MessageType.HaveAll: this.onHaveAll(msg); break
      case MessageType.HaveNone: this.onHaveNone(msg); break
      case MessageType.Have: this.onHave(msg); break
      case MessageType.Interested: this.onInterest(true); break
      case MessageType.NotInterested: this.onInterest(false); break
      case MessageType.Choke: this.onChoke(); break
      case MessageType.Unchoke: this.onUnchoke(); break
      case MessageType.Request: this.onRequest(msg); break
      case MessageType.Cancel: this.onCancel(msg); break
      case MessageType.Piece: this.onPiece(msg); break
      case MessageType.Reject: this.onReject(msg); break
      case MessageType.Peers: this.onPeers(msg); break
      case MessageType.KeepAlive: this.onKeepAlive(); break
      default: {
        // every message type has its handler: a new one that does not fails to compile here
        const unhandled: never = msg
        return unhandled
      }
    }
  }

  private onHandshake (msg: Message<MessageType.Handshake>): void {
    if (this.handshaken) this.violation('second handshake')
    if (msg.version !== WIRE_VERSION) this.violation(`unsupported wire version ${msg.version}`)
    if (!equalBytes(msg.manifest, this.geometry.manifest)) this.violation('handshake for another manifest')
    this.handshaken = true
  }

  private onBitfield (msg: Message<MessageType.Bitfield>): void {
    this.setHaveState(msg.type, () => Bitfield.fromBytes(this.geometry.pieceCount, msg.bitfield))
  }

  private onHaveAll (msg: Message<MessageType.HaveAll>): void {
    this.setHaveState(msg.type, () => Bitfield.full(this.geometry.pieceCount))
  }

  private onHaveNone (msg: Message<MessageType.HaveNone>): void {
    this.setHaveState(msg.type, () => new Bitfield(this.geometry.pieceCount))
  }

  /** The remote's have-state, from a bitfield, have-all or have-none (made after the checks). */
  private setHaveState (type: MessageType, peerHas: () => Bitfield): void {
    // BEP 3: "'bitfield' is only ever sent as the first message" (after the handshake)
    if (this.haveStateKnown) this.violation(`${messageName(type)} after the have-state was set`)
    this.haveStateKnown = true
    this.peerHas = peerHas()
    this.peerHasAll = this.peerHas.isComplete()
    this.delegate.onHaveState(this)
  }

  private onHave (msg: Message<MessageType.Have>): void {
    this.requireHaveState(msg.type)
    if (msg.piece >= this.geometry.pieceCount) this.violation(`have for piece ${msg.piece} of ${this.geometry.pieceCount}`)
    const peerHas = this.peerHas as Bitfield
    if (!peerHas.get(msg.piece)) {
      peerHas.set(msg.piece)
      this.peerHasAll = peerHas.isComplete()
      this.delegate.onHave(this, msg.piece)
    }
  }

  /** interested (true) or not-interested (false) */
  private onInterest (interested: boolean): void {
    if (interested !== this.peerInterested) {
      this.peerInterested = interested
      this.delegate.onInterest(this)
    }
  }

  private onChoke (): void {
    if (!this.peerChoking) {
      this.peerChoking = true
      // BEP 3: when choked, "all pending requests are discarded"; a late block is forgiven
      const dropped = [...this.outstanding.values()].map(o => o.block)
      for (const b of dropped) this.forgive(key(b.piece, b.offset))
      this.outstanding.clear()
      this.delegate.onChoke(this, dropped)
    }
  }

  private onUnchoke (): void {
    if (this.peerChoking) {
      this.peerChoking = false
      this.lastBlockAt = Math.max(this.lastBlockAt, this.now())
      this.delegate.onUnchoke(this)
    }
  }

  private onRequest (msg: Message<MessageType.Request>): void {
    this.requireHaveState(msg.type)
    this.checkBlock(msg, 'request')
    if (!this.delegate.hasPiece(msg.piece)) this.violation(`request for piece ${msg.piece}, which we do not have`)
    if (this.amChoking) {
      // a request that crossed our choke on the wire: refuse it politely (BEP 6), but a
      // peer that keeps asking while choked is only making us write rejects
      if (++this.rejectedWhileChoked > MAX_QUEUED_REQUESTS) this.violation(`more than ${MAX_QUEUED_REQUESTS} requests while choked`)
      this.send(encodeReject(msg))
      return
    }
    if (this.incoming.length >= MAX_QUEUED_REQUESTS) this.violation(`more than ${MAX_QUEUED_REQUESTS} queued requests`)
    this.incoming.push({ piece: msg.piece, offset: msg.offset, length: msg.length })
    void this.pump()
  }

  private onCancel (msg: Message<MessageType.Cancel>): void {
    this.checkBlock(msg, 'cancel')
    const i = this.incoming.findIndex(b => b.piece === msg.piece && b.offset === msg.offset && b.length === msg.length)
    if (i >= 0) this.incoming.splice(i, 1)
  }

  private onPiece (msg: Message<MessageType.Piece>): void {
    const k = key(msg.piece, msg.offset)
    const o = this.outstanding.get(k)
    if (o == null) {
      if (this.forgiven.delete(k)) return // it was in flight when we cancelled or were choked
      this.violation(`unsolicited block ${msg.piece}/${msg.offset}`)
    }
    if (o.block.length !== msg.data.byteLength) this.violation(`block ${msg.piece}/${msg.offset} has ${msg.data.byteLength} bytes, asked for ${o.block.length}`)
    this.outstanding.delete(k)
    if (o.sentAt > this.answeredSentAt) this.answeredSentAt = o.sentAt
    this.lastBlockAt = this.now()
    this.lastDownloadAt = this.lastBlockAt
    this.down.add(msg.data.byteLength)
    this.delegate.onBlock(this, msg.piece, msg.offset, msg.data)
  }

  private onReject (msg: Message<MessageType.Reject>): void {
    this.checkBlock(msg, 'reject')
    const k = key(msg.piece, msg.offset)
    const o = this.outstanding.get(k)
    if (o != null) {
      this.outstanding.delete(k)
      this.delegate.onReject(this, o.block)
    }
  }

  private onPeers (msg: Message<MessageType.Peers>): void {
    this.requireHaveState(msg.type)
    this.delegate.onPeers(this, msg.peers)
  }

  /** nothing to do: readLoop has already noted when we last heard from the peer */
  private onKeepAlive (): void {}

  private requireHaveState (type: MessageType): void {
    if (!this.haveStateKnown) this.violation(`${messageName(type)} before bitfield, have-all or have-none`)
  }

  private forgive (k: string): void {
    // bounded: the oldest forgiveness goes first (a Set iterates in insertion order)
    if (this.forgiven.size >= MAX_FORGIVEN) this.forgiven.delete(this.forgiven.values().next().value as string)
    this.forgiven.add(k)
  }

  /** Serves queued requests, reading blocks from disk and writing them in batches. */
  private async pump (): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (!this.closed && this.incoming.length > 0) {
        const b = this.incoming[0]
        const limiter = this.limiter
        if (limiter != null && !limiter.tryTake(b.length)) {
          this.flush()
          await limiter.take(b.length)
          if (this.closed) return
          if (this.incoming[0] !== b) {
            limiter.refund(b.length)
            continue
          }
        }
        const upload = this.upload
        if (upload != null && !upload.tryTake(b.length)) {
          // over the rate cap: what is queued goes out now, then we wait for our turn. A stream
          // that cannot take more waits for drain first, out of the line: tokens taken for it
          // would sit in its buffer while the other peers' share goes unsent
          this.flush()
          await this.drained()
          if (this.closed) return
          if (this.incoming[0] !== b) {
            limiter?.refund(b.length)
            continue
          }
          await upload.take(b.length)
          if (this.closed || this.incoming[0] !== b) {
            upload.refund(b.length)
            limiter?.refund(b.length)
            continue
          }
        }
        const data = await this.delegate.readBlock(b.piece, b.offset, b.length)
        // it may have been cancelled (or the peer choked, or the session closed) while we read
        // from disk: the tokens go back to the other sessions
        if (this.closed || this.incoming[0] !== b) {
          upload?.refund(b.length)
          limiter?.refund(b.length)
          continue
        }
        this.incoming.shift()
        this.send(encodePiece(b.piece, b.offset, data))
        this.up.add(b.length)
        this.lastUploadAt = this.now()
        this.delegate.onUpload(this, b.length)
        if (this.outbox.bytes >= FLUSH_BYTES || this.incoming.length === 0) {
          if (!this.flush()) await this.drained()
        }
      }
    } catch (err) {
      if (!this.closed) this.close(`upload failed: ${(err as Error).message}`)
    } finally {
      this.pumping = false
    }
  }

  /**
   * Resolves once the stream can take more (or has closed). Not `stream.onDrain()`: in
   * @libp2p/utils 7.4 that promise is made once and never reset, so after the first drain it
   * waited for it resolves at once even while the stream still needs drain.
   */
  private async drained (): Promise<void> {
    const stream = this.stream
    if (!stream.writableNeedsDrain) return
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        stream.removeEventListener('drain', done)
        stream.removeEventListener('close', done)
        resolve()
      }
      const timer = setTimeout(() => {
        stream.removeEventListener('drain', done)
        stream.removeEventListener('close', done)
        reject(new Error('no drain within 60 s'))
      }, 60_000)
      stream.addEventListener('drain', done)
      stream.addEventListener('close', done)
    })
  }

  /**
   * Queues a frame. Frames are written together once per event-loop turn (or sooner when
   * enough bytes wait), gathered into few buffers (see Outbox): one write costs a Noise frame, a
   * yamux frame and syscalls, and a session sends many small messages (haves, requests) in bursts.
   */
  private send (data: Uint8Array | Uint8ArrayList): void {
    if (this.closed) return
    this.lastSentAt = this.now()
    // waiting haves first: frames leave in the order they were sent
    if (this.lazyHaves.length > 0) this.takeHaves()
    this.outbox.add(data)
    if (this.outbox.bytes >= FLUSH_BYTES) {
      this.flush()
    } else if (this.flushTimer == null) {
      this.flushTimer = setImmediate(() => { this.flushTimer = undefined; this.flush() })
    }
  }

  /** Writes what is queued; false when the stream's buffer is full (wait for drain). */
  private flush (): boolean {
    if (this.flushTimer != null) { clearImmediate(this.flushTimer); this.flushTimer = undefined }
    if (this.lazyHaves.length > 0 && !this.closed) {
      this.lastSentAt = this.now()
      this.takeHaves()
    }
    if (this.closed || this.outbox.bytes === 0) return true
    const data = this.outbox.take()
    try {
      return this.stream.send(data)
    } catch (err) {
      this.finish(`send failed: ${(err as Error).message}`)
      return true
    }
  }

  get haveStateReceived (): boolean {
    return this.haveStateKnown
  }

  get queuedUploads (): number {
    return this.incoming.length
  }

  /** Peer exchange: tell this peer about other swarm members. */
  sendPeers (peers: WirePeer[]): void {
    if (peers.length > 0) this.send(encodePeers(peers))
  }

  /**
   * Tells the peer we have `piece`. A have rides along with whatever else is queued; alone, it
   * waits up to HAVE_DELAY_MS for other frames (requests, blocks, more haves) to share a write
   * with. A downloader of many small pieces verifies one every few hundred microseconds, and a
   * write of its own for each have cost both ends a Noise frame, a yamux frame and its window
   * update, and a wake-up; the peer learns of the piece a few tens of milliseconds later at most.
   */
  have (piece: number): void {
    if (this.closed) return
    if (this.outbox.bytes > 0) {
      this.send(encodeHave(piece))
      return
    }
    this.lazyHaves.push(piece)
    if (this.lazyHaves.length >= HAVE_BATCH) {
      this.flush()
    } else if (this.haveTimer == null) {
      this.haveTimer = setTimeout(() => { this.haveTimer = undefined; this.flush() }, HAVE_DELAY_MS)
      this.haveTimer.unref?.()
    }
  }

  /** Moves the waiting haves into the outbox. */
  private takeHaves (): void {
    if (this.haveTimer != null) { clearTimeout(this.haveTimer); this.haveTimer = undefined }
    this.outbox.add(encodeHaves(this.lazyHaves))
    this.lazyHaves = []
  }

  setInterested (interested: boolean): void {
    if (interested === this.amInterested) return
    this.amInterested = interested
    this.send(interested ? encodeInterested() : encodeNotInterested())
  }

  choke (): void {
    if (this.amChoking) return
    this.amChoking = true
    // BEP 6: with reject messages, a choke rejects every queued request explicitly. The choke
    // goes first: the peer drops its requests on it and ignores the rejects that follow, which
    // it would otherwise count as refusals and back off from us (see RequestBackoff), every
    // time a trial or an optimistic turn ends
    this.send(encodeChoke())
    for (const b of this.incoming.splice(0)) this.send(encodeReject(b))
  }

  /**
   * This session's part of a capped uplink: its weight against the other sessions' and, for the
   * optimistic unchoke, a rate it may not exceed even when the uplink has room to spare (the
   * choker decides both).
   */
  setUploadShare (weight: number, limit: number | undefined): void {
    this.upload?.setWeight(weight)
    if (limit === undefined) this.limiter = undefined
    else if (this.limiter?.rate !== limit) this.limiter = new Throttle({ rate: limit })
  }

  unchoke (): void {
    if (!this.amChoking) return
    this.amChoking = false
    this.rejectedWhileChoked = 0
    this.send(encodeUnchoke())
  }

  /** Sends requests for these blocks (they leave in one write with whatever else is queued). */
  request (blocks: BlockSpec[]): void {
    const now = this.now()
    for (const b of blocks) {
      this.outstanding.set(key(b.piece, b.offset), { block: b, sentAt: now })
      this.send(encodeRequest(b))
    }
  }

  cancel (block: BlockSpec): void {
    const k = key(block.piece, block.offset)
    if (!this.outstanding.delete(k)) return
    this.forgive(k)
    this.send(encodeCancel(block))
  }

  /** When we sent the oldest of our requests it has not answered (undefined: none outstanding). */
  oldestRequestAt (): number | undefined {
    let oldest: number | undefined
    for (const o of this.outstanding.values()) if (oldest === undefined || o.sentAt < oldest) oldest = o.sentAt
    return oldest
  }

  /** Requests outstanding longer than `timeoutMs`: dropped from our books and returned. */
  expireRequests (timeoutMs: number): BlockSpec[] {
    const now = this.now()
    const expired: BlockSpec[] = []
    for (const o of this.outstanding.values()) {
      if (now - o.sentAt > timeoutMs) {
        expired.push(o.block)
        this.cancel(o.block)
      }
    }
    return expired
  }

  /**
   * Requests the peer passed over: it has answered one we sent at least `graceMs` after them. A
   * peer serves requests in the order they came, so these are being withheld (a peer that sends
   * every block of a piece but one): dropped from our books (cancelled) and returned, without
   * waiting for the request timeout.
   */
  expireSkipped (graceMs: number): BlockSpec[] {
    const skipped: BlockSpec[] = []
    // the map iterates in the order requests were sent: stop at the first one not passed over
    for (const o of this.outstanding.values()) {
      if (o.sentAt + graceMs > this.answeredSentAt) break
      skipped.push(o.block)
    }
    for (const b of skipped) this.cancel(b)
    return skipped
  }

  /** Sends a keep-alive when we have been quiet; closes a peer silent for `deadMs`. */
  keepAlive (idleMs: number, deadMs: number): void {
    const now = this.now()
    if (now - this.lastReceivedAt > deadMs) {
      this.close(`nothing received for ${Math.round(deadMs / 1000)} s`)
      return
    }
    if (now - this.lastSentAt >= idleMs) this.send(encodeKeepAlive())
  }

  /** Closes the session for a protocol reason (logged) or quietly (no reason). */
  close (reason?: string): void {
    if (this.closed) return
    if (reason != null) {
      this.log(`closing session with ${shortId(this.remotePeer)}: ${reason}`)
      // finish first: abort() emits 'close' at once, whose listener would report "stream closed: …"
      this.finish(reason)
      this.stream.abort(new ProtocolError(reason))
    } else {
      this.flush()
      this.stream.close().catch(() => { this.stream.abort(new Error('close failed')) })
    }
    this.finish(reason)
  }

  private finish (reason: string | undefined): void {
    if (this.closed) return
    this.closed = true
    this.closeReason = reason
    this.readAbort.abort()
    if (this.flushTimer != null) clearImmediate(this.flushTimer)
    if (this.haveTimer != null) clearTimeout(this.haveTimer)
    this.lazyHaves = []
    this.incoming.length = 0
    this.delegate.onClose(this, reason)
  }
}

export function shortId (id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
