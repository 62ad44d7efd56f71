// Piece and block selection, after the policy in Bram Cohen's "Incentives Build Robustness in
// BitTorrent" (section 2.3) as deployed by BitTorrent clients:
// - strict priority: "once a single sub-piece has been requested, the remaining sub-pieces from
//   that particular piece are requested before sub-pieces from any other piece";
// - rarest first: "peers generally download pieces which the fewest of their own peers have first";
// - random first piece: "pieces to download are selected at random until the first complete piece
//   is assembled, and then the strategy changes to rarest first";
// - endgame: "once all sub-pieces which a peer doesn't have are actively being requested it sends
//   requests for all sub-pieces to all peers. Cancels are sent for sub-pieces which arrive".
// Among equally rare pieces, a pick that starts (at random) on a piece of one block goes on with
// its neighbours (as libtorrent's piece_extent_affinity): peers still spread out, and the small
// pieces one peer is asked for land side by side on disk.
// Pure: no I/O, no timers; randomness is injected so tests are deterministic.

import { Bitfield } from '../bitfield.js'
import { MAX_BLOCK_LENGTH, type BlockSpec } from '../wire/codec.js'

/** The size of the blocks we request: the largest the wire carries (one fact, defined there). */
export const BLOCK_SIZE = MAX_BLOCK_LENGTH

/** Pipeline depth bounds for requestDepth(). */
export const MIN_REQUEST_DEPTH = 4
export const MAX_REQUEST_DEPTH = 256


export interface PickerInit {
  pieceCount: number
  pieceLength: number
  totalLength: number
  /** default BLOCK_SIZE; the last block of the last piece may be shorter */
  blockSize?: number
  /** default 4: while we have fewer verified pieces, pick a random piece */
  randomFirstPieces?: number
  /** default Math.random */
  random?: () => number
  /** pieces we already have (verified); copied, the picker owns `have` afterwards */
  have?: Bitfield
  /**
   * The pieces we want (default: all): a selection of a folder's files. The others are never
   * requested, do not make a peer interesting, and are not needed to be complete.
   */
  wanted?: Bitfield
  /**
   * The size of each piece when they are not all pieceLength but the last (a folder: each file
   * starts on a piece boundary, so the last piece of every file may be short). Sizes must be
   * 1..pieceLength and add up to totalLength.
   */
  pieceSize?: (piece: number) => number
  /**
   * Bytes of pieces being assembled at once (default: no limit). Every started piece holds a
   * buffer until it verifies: past this budget no new piece is started, though one always may
   * be. A peer that sends all of a piece but one block cannot make us hold more.
   */
  maxActiveBytes?: number
  /**
   * Our own peer id: with it, equally rare pieces are split among the downloaders we know (see
   * stripe()). Without it, ties are broken at random alone.
   */
  selfId?: string
}

export interface BlockReceivedResult {
  accepted: boolean
  cancels: Array<{ peerId: string, block: BlockSpec }>
  pieceComplete: boolean
}

interface PeerState {
  /** undefined = has every piece (a seed): no per-piece bookkeeping needed */
  has: Bitfield | undefined
  /** pieces in `has` */
  count: number
  /** pieces it has that we lack and want; kept current so isInteresting() is O(1) */
  wanted: number
  /** block key -> block requested from this peer and not yet answered */
  inFlight: Map<number, BlockSpec>
}

/** A piece with at least one block requested or received (and not yet verified). */
class ActivePiece {
  readonly requesters: Array<string[] | undefined>
  readonly received: Uint8Array
  receivedCount = 0
  /** blocks received or requested from at least one peer */
  busyCount = 0
  /** no free block below this index (a hint; lowered when a block is released) */
  firstFree = 0

  constructor (readonly piece: number, readonly blockCount: number) {
    this.requesters = new Array<string[] | undefined>(blockCount).fill(undefined)
    this.received = new Uint8Array(blockCount)
  }
}

export class PiecePicker {
  readonly have: Bitfield
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  readonly blockSize: number
  private readonly randomFirstPieces: number
  private readonly random: () => number
  private readonly blocksPerPiece: number
  private readonly avail: Uint32Array
  /** peers with every piece, counted once instead of in every `avail` slot */
  private seeds = 0
  private readonly peers = new Map<string, PeerState>()
  /** by piece index, for O(1) lookup during the O(pieces) scan */
  private readonly state: Array<ActivePiece | undefined>
  /** the same pieces in the order they were started: finish the oldest first */
  private readonly active = new Map<number, ActivePiece>()
  /** blocks of missing pieces neither requested nor received; 0 => endgame */
  private free = 0
  /** reused candidate list for pickNewPieces(): no per-pick allocation */
  private readonly scratch: Uint32Array
  /** the size of the rarest bucket at the front of `scratch` (see collectCandidates) */
  private bucket = 0
  /**
   * A bit set when the piece is had, active or not wanted (never started), in Bitfield's layout,
   * with the bits past the last piece set: the new-piece scans skip eight pieces a step where a
   * peer has nothing for us. They run on nearly every block and `have`: per piece, a folder of
   * 10,000 one-piece files otherwise scanned 10,000 pieces.
   */
  private readonly taken: Uint8Array
  /** 1 when the piece failed its hash check: it is fetched again from one peer at a time */
  private readonly solo: Uint8Array
  private readonly maxActiveBytes: number
  /** 1 when we want the piece (see PickerInit.wanted) */
  private readonly want: Uint8Array
  /** pieces we want and do not have */
  private remaining = 0
  private readonly sizeOf: ((piece: number) => number) | undefined
  /** bytes of the pieces in `active` */
  private activeBytes = 0
  private readonly selfId: string | undefined
  /** our stripe (see stripe()): index, of count; recomputed when the downloaders we know change */
  private stripeIndex = 0
  private stripeCount = 1
  private stripeStale = true

  constructor (init: PickerInit) {
    const { pieceCount, pieceLength, totalLength } = init
    const blockSize = init.blockSize ?? BLOCK_SIZE
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) throw new RangeError(`invalid pieceLength ${pieceLength}`)
    if (!Number.isSafeInteger(totalLength) || totalLength < 0) throw new RangeError(`invalid totalLength ${totalLength}`)
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0) throw new RangeError(`invalid blockSize ${blockSize}`)
    if (init.pieceSize === undefined && pieceCount !== Math.ceil(totalLength / pieceLength)) {
      throw new RangeError(`pieceCount ${pieceCount} does not match ${totalLength} bytes in pieces of ${pieceLength}`)
    }
    if (init.pieceSize !== undefined) {
      let sum = 0
      for (let i = 0; i < pieceCount; i++) {
        const size = init.pieceSize(i)
        if (!Number.isSafeInteger(size) || size < 1 || size > pieceLength) throw new RangeError(`invalid size ${size} of piece ${i}`)
        sum += size
      }
      if (sum !== totalLength) throw new RangeError(`piece sizes add up to ${sum}, not ${totalLength}`)
    }
    for (const [what, bits] of [['have', init.have], ['wanted', init.wanted]] as const) {
      if (bits !== undefined && bits.size !== pieceCount) throw new RangeError(`${what} bitfield has ${bits.size} bits, expected ${pieceCount}`)
    }
    this.sizeOf = init.pieceSize
    this.selfId = init.selfId
    this.pieceCount = pieceCount
    this.pieceLength = pieceLength
    this.totalLength = totalLength
    this.blockSize = blockSize
    this.randomFirstPieces = init.randomFirstPieces ?? 4
    this.random = init.random ?? Math.random
    this.blocksPerPiece = Math.ceil(pieceLength / blockSize)
    this.have = init.have?.clone() ?? new Bitfield(pieceCount)
    this.avail = new Uint32Array(pieceCount)
    this.scratch = new Uint32Array(pieceCount)
    this.taken = new Uint8Array(Math.ceil(pieceCount / 8))
    if (pieceCount % 8 !== 0) this.taken[this.taken.length - 1] = 0xff >> (pieceCount % 8)
    this.solo = new Uint8Array(pieceCount)
    this.maxActiveBytes = init.maxActiveBytes ?? Infinity
    if (!(this.maxActiveBytes > 0)) throw new RangeError(`invalid maxActiveBytes ${this.maxActiveBytes}`)
    this.state = new Array<ActivePiece | undefined>(pieceCount).fill(undefined)
    this.want = new Uint8Array(pieceCount)
    for (let i = 0; i < pieceCount; i++) {
      this.want[i] = init.wanted === undefined || init.wanted.get(i) ? 1 : 0
      // a piece we do not want is as good as had for the new-piece scan: never started
      if (this.have.get(i) || this.want[i] === 0) {
        this.setTaken(i, true)
      } else {
        this.free += this.blockCount(i)
        this.remaining++
      }
    }
  }

  pieceSize (piece: number): number {
    this.checkPiece(piece)
    if (this.sizeOf !== undefined) return this.sizeOf(piece)
    return piece < this.pieceCount - 1 ? this.pieceLength : this.totalLength - this.pieceLength * (this.pieceCount - 1)
  }

  blockCount (piece: number): number {
    return Math.ceil(this.pieceSize(piece) / this.blockSize)
  }

  blocksOf (piece: number): BlockSpec[] {
    const size = this.pieceSize(piece)
    const out: BlockSpec[] = []
    for (let offset = 0; offset < size; offset += this.blockSize) {
      out.push({ piece, offset, length: Math.min(this.blockSize, size - offset) })
    }
    return out
  }

  // --- availability -------------------------------------------------------------------------

  /** Sets (or replaces) the peer's have-set. Its in-flight requests are kept. */
  addPeer (peerId: string, has: Bitfield | 'all' | 'none'): void {
    if (has instanceof Bitfield && has.size !== this.pieceCount) {
      throw new RangeError(`bitfield has ${has.size} bits, expected ${this.pieceCount}`)
    }
    const old = this.peers.get(peerId)
    if (old !== undefined) this.forgetAvailability(old)
    const state: PeerState = { has: undefined, count: 0, wanted: 0, inFlight: old?.inFlight ?? new Map() }
    if (has === 'all' || (has instanceof Bitfield && has.isComplete())) {
      this.seeds++
      state.count = this.pieceCount
    } else {
      state.has = has === 'none' ? new Bitfield(this.pieceCount) : has.clone()
      if (has !== 'none') {
        for (let i = 0; i < this.pieceCount; i++) {
          if (state.has.get(i)) {
            this.avail[i]++
            state.count++
            if (this.needs(i)) state.wanted++
          }
        }
      }
    }
    this.peers.set(peerId, state)
    this.stripeStale = true
  }

  /** A `have` message. Unknown peers start from 'none' (BEP 3: the bitfield message is optional).
   * Out-of-range indexes are ignored: the caller validates the wire message. */
  peerHave (peerId: string, piece: number): void {
    if (!Number.isInteger(piece) || piece < 0 || piece >= this.pieceCount) return
    let peer = this.peers.get(peerId)
    if (peer === undefined) {
      this.addPeer(peerId, 'none')
      peer = this.peers.get(peerId) as PeerState
    }
    if (peer.has === undefined || peer.has.get(piece)) return
    peer.has.set(piece)
    this.avail[piece]++
    // a peer that now has everything downloads no more: the stripes are split among fewer
    if (++peer.count === this.pieceCount) this.stripeStale = true
    if (this.needs(piece)) peer.wanted++
  }

  /** Forgets the peer; its in-flight blocks become requestable again and are returned. */
  removePeer (peerId: string): BlockSpec[] {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return []
    this.forgetAvailability(peer)
    const released = [...peer.inFlight.values()]
    for (const block of released) this.release(peerId, block)
    this.peers.delete(peerId)
    this.stripeStale = true
    return released
  }

  peerHas (peerId: string, piece: number): boolean {
    const peer = this.peers.get(peerId)
    if (peer === undefined || !Number.isInteger(piece) || piece < 0 || piece >= this.pieceCount) return false
    return peer.has === undefined || peer.has.get(piece)
  }

  isInteresting (peerId: string): boolean {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return false
    return peer.has === undefined ? this.remaining > 0 : peer.wanted > 0
  }

  availability (piece: number): number {
    if (!Number.isInteger(piece) || piece < 0 || piece >= this.pieceCount) return 0
    return this.avail[piece] + this.seeds
  }

  /** Every piece's availability (the peers known to have it), each capped at 255. */
  availabilityMap (): Uint8Array {
    const out = new Uint8Array(this.pieceCount)
    for (let i = 0; i < this.pieceCount; i++) out[i] = Math.min(255, this.avail[i] + this.seeds)
    return out
  }

  // --- requests -----------------------------------------------------------------------------

  pick (peerId: string, max: number): BlockSpec[] {
    const peer = this.peers.get(peerId)
    const out: BlockSpec[] = []
    if (peer === undefined || !(max > 0)) return out

    // 1. strict priority: finish pieces already started, oldest first, so they can be hashed
    //    and announced instead of leaving many pieces half done; but rarity comes first. A
    //    piece that another peer is sending us right now is left to that peer when this one
    //    can give us something rarer: otherwise a seed's upload goes to pieces the swarm
    //    already has, and under an upload cap the seed's bandwidth is what bounds everyone
    //    (Kumar and Ross: F/u_s).
    if (this.free > 0) {
      let rarest = -1
      for (const ap of this.active.values()) {
        if (out.length >= max) break
        if (ap.busyCount === ap.blockCount || !this.has(peer, ap.piece)) continue
        if (ap.busyCount > ap.receivedCount && this.busyElsewhere(ap, peerId)) {
          // a piece that failed is fetched from one peer, so that if it fails again the
          // blame is that peer's alone
          if (this.solo[ap.piece] === 1) continue
          if (rarest < 0) rarest = this.rarestUnstarted(peer)
          if (this.avail[ap.piece] > rarest) continue
        }
        this.takeFree(ap, peerId, peer, max, out)
      }
    }

    // 2. new pieces: random while we have nothing to trade, rarest first afterwards
    if (out.length < max && this.free > 0) this.pickNewPieces(peerId, peer, max, out)

    // 3. endgame: every missing block is already requested somewhere; ask this peer too
    if (out.length < max && this.endgame) this.pickEndgame(peerId, peer, max, out)
    return out
  }

  blockReceived (peerId: string, piece: number, offset: number): BlockReceivedResult {
    const rejected: BlockReceivedResult = { accepted: false, cancels: [], pieceComplete: false }
    const ap = Number.isInteger(piece) && piece >= 0 && piece < this.pieceCount ? this.state[piece] : undefined
    if (ap === undefined || !Number.isInteger(offset) || offset < 0 || offset % this.blockSize !== 0) return rejected
    const b = offset / this.blockSize
    if (b >= ap.blockCount) return rejected
    const requesters = ap.requesters[b]
    // not requested from this peer (or timed out / already received): drop the data
    if (ap.received[b] === 1 || requesters === undefined || !requesters.includes(peerId)) return rejected

    ap.received[b] = 1
    ap.receivedCount++
    ap.requesters[b] = undefined
    const key = this.key(piece, b)
    const cancels: BlockReceivedResult['cancels'] = []
    for (const r of requesters) {
      const ref = this.peers.get(r)?.inFlight.get(key)
      this.peers.get(r)?.inFlight.delete(key)
      if (r !== peerId) cancels.push({ peerId: r, block: ref ?? this.blockRef(piece, b) })
    }
    return { accepted: true, cancels, pieceComplete: ap.receivedCount === ap.blockCount }
  }

  /** reject / choke / timeout: the block becomes requestable again (unless others still have it in flight) */
  requestFailed (peerId: string, block: BlockSpec): void {
    if (!Number.isInteger(block.piece) || block.piece < 0 || block.piece >= this.pieceCount) return
    this.peers.get(peerId)?.inFlight.delete(this.key(block.piece, Math.floor(block.offset / this.blockSize)))
    this.release(peerId, block)
  }

  pieceVerified (piece: number): void {
    this.checkPiece(piece)
    if (this.have.get(piece)) return
    this.solo[piece] = 0
    const wanted = this.want[piece] === 1
    const ap = this.state[piece]
    if (ap !== undefined) {
      this.free -= ap.blockCount - ap.busyCount
      this.dropActive(ap)
    } else if (wanted) {
      this.free -= this.blockCount(piece)
    }
    this.have.set(piece)
    this.setTaken(piece, true)
    if (!wanted) return
    this.remaining--
    for (const peer of this.peers.values()) {
      if (peer.has?.get(piece) === true) peer.wanted--
    }
  }

  /** Hash mismatch: every block of the piece is missing again, to be fetched from one peer. */
  pieceFailed (piece: number): void {
    this.checkPiece(piece)
    this.solo[piece] = 1
    if (this.have.get(piece)) {
      this.have.set(piece, false)
      if (this.want[piece] === 0) return
      this.setTaken(piece, false)
      this.free += this.blockCount(piece)
      this.remaining++
      for (const peer of this.peers.values()) {
        if (peer.has?.get(piece) === true) peer.wanted++
      }
      return
    }
    const ap = this.state[piece]
    if (ap === undefined) return
    this.free += ap.busyCount
    this.dropActive(ap)
  }

  inFlight (peerId: string): number {
    return this.peers.get(peerId)?.inFlight.size ?? 0
  }

  /** Bytes of the pieces started and not yet verified (each holds a buffer while assembled). */
  get activePieceBytes (): number {
    return this.activeBytes
  }

  /** Pieces started and not yet verified. */
  get activePieces (): number {
    return this.active.size
  }

  /** The pieces started (a block requested or received) and not yet verified, in index order. */
  activePieceIndexes (): number[] {
    return [...this.active.keys()].sort((a, b) => a - b)
  }

  get endgame (): boolean {
    return this.free === 0 && this.remaining > 0
  }

  /** We have every piece we want (every piece, without a selection). */
  isComplete (): boolean {
    return this.remaining === 0
  }

  /** Pieces we want and do not have yet. */
  get piecesLeft (): number {
    return this.remaining
  }

  // --- internals ----------------------------------------------------------------------------

  private checkPiece (piece: number): void {
    if (!Number.isInteger(piece) || piece < 0 || piece >= this.pieceCount) {
      throw new RangeError(`piece ${piece} out of range [0, ${this.pieceCount})`)
    }
  }

  /** We want `piece` and do not have it. */
  private needs (piece: number): boolean {
    return this.want[piece] === 1 && !this.have.get(piece)
  }

  private has (peer: PeerState, piece: number): boolean {
    return peer.has === undefined || peer.has.get(piece)
  }

  private key (piece: number, block: number): number {
    return piece * this.blocksPerPiece + block
  }

  private blockRef (piece: number, block: number): BlockSpec {
    const offset = block * this.blockSize
    return { piece, offset, length: Math.min(this.blockSize, this.pieceSize(piece) - offset) }
  }

  private forgetAvailability (peer: PeerState): void {
    if (peer.has === undefined) {
      this.seeds--
      return
    }
    for (let i = 0; i < this.pieceCount; i++) {
      if (peer.has.get(i)) this.avail[i]--
    }
  }

  /** Removes peerId as a requester of the block; frees the block if nobody else asked for it. */
  private release (peerId: string, block: BlockSpec): void {
    const ap = this.state[block.piece]
    if (ap === undefined || block.offset % this.blockSize !== 0) return
    const b = block.offset / this.blockSize
    const requesters = ap.requesters[b]
    if (requesters === undefined) return
    const idx = requesters.indexOf(peerId)
    if (idx < 0) return
    requesters.splice(idx, 1)
    if (requesters.length > 0) return
    ap.requesters[b] = undefined
    ap.busyCount--
    this.free++
    if (b < ap.firstFree) ap.firstFree = b
    // nothing requested or received any more: back to an ordinary, unstarted piece
    if (ap.busyCount === 0) this.dropActive(ap)
  }

  private startPiece (piece: number): ActivePiece {
    const ap = new ActivePiece(piece, this.blockCount(piece))
    this.state[piece] = ap
    this.setTaken(piece, true)
    this.active.set(piece, ap)
    this.activeBytes += this.pieceSize(piece)
    return ap
  }

  /** Forgets an active piece, and any requests for it still counted as in flight. */
  private dropActive (ap: ActivePiece): void {
    for (let b = 0; b < ap.blockCount; b++) {
      const requesters = ap.requesters[b]
      if (requesters === undefined) continue
      const key = this.key(ap.piece, b)
      for (const r of requesters) this.peers.get(r)?.inFlight.delete(key)
    }
    this.state[ap.piece] = undefined
    this.setTaken(ap.piece, this.have.get(ap.piece) || this.want[ap.piece] === 0)
    this.active.delete(ap.piece)
    this.activeBytes -= this.pieceSize(ap.piece)
  }

  private takeFree (ap: ActivePiece, peerId: string, peer: PeerState, max: number, out: BlockSpec[]): void {
    for (let b = ap.firstFree; b < ap.blockCount && out.length < max; b++) {
      if (ap.received[b] === 1 || ap.requesters[b] !== undefined) {
        if (b === ap.firstFree) ap.firstFree = b + 1
        continue
      }
      const ref = this.blockRef(ap.piece, b)
      ap.requesters[b] = [peerId]
      ap.busyCount++
      this.free--
      if (b === ap.firstFree) ap.firstFree = b + 1
      peer.inFlight.set(this.key(ap.piece, b), ref)
      out.push(ref)
    }
  }

  /** Some block of the piece is in flight from a peer other than this one. */
  private busyElsewhere (ap: ActivePiece, peerId: string): boolean {
    for (let b = 0; b < ap.blockCount; b++) {
      const r = ap.requesters[b]
      if (r !== undefined && (r.length > 1 || r[0] !== peerId)) return true
    }
    return false
  }

  private setTaken (piece: number, taken: boolean): void {
    if (taken) this.taken[piece >> 3] |= 0x80 >> (piece & 7)
    else this.taken[piece >> 3] &= ~(0x80 >> (piece & 7))
  }

  /** Lowest availability among the unstarted pieces we lack and the peer has (0xffffffff: none). */
  private rarestUnstarted (peer: PeerState): number {
    const has = peer.has
    const taken = this.taken
    let min = 0xffffffff
    for (let j = 0; j < taken.length; j++) {
      // the pieces of this byte that are candidates, lowest index in the high bit
      let bits = ~taken[j] & (has === undefined ? 0xff : has.byte(j))
      while (bits !== 0) {
        const b = Math.clz32(bits) - 24
        bits &= ~(0x80 >> b)
        const a = this.avail[(j << 3) + b]
        if (a < min) min = a
        if (min === 0) return 0
      }
    }
    return min
  }

  /**
   * Our stripe: equally rare pieces are split among the downloaders we know (ourselves and every
   * peer without all pieces), ranked by peer id, so that each takes piece ≡ index (mod count)
   * first. Rarest first alone left ties to chance: four leechers of one capped seed each drew
   * from the same few hundred pieces only the seed had, and a fifth of the seed's upload went to
   * pieces it was already sending another leecher (every duplicate within a second of the
   * first); under a cap the seed's upload bounds everyone (F/u_s). Every downloader sees the
   * same ids and so the same ranks; one that sees other peers splits differently, which costs
   * only what chance did. Never a refusal: outside our stripe is still picked when ours is empty.
   */
  private stripe (): void {
    this.stripeStale = false
    this.stripeIndex = 0
    this.stripeCount = 1
    if (this.selfId === undefined) return
    const ids: string[] = [this.selfId]
    for (const [id, p] of this.peers) if (p.count < this.pieceCount && id !== this.selfId) ids.push(id)
    if (ids.length < 2) return
    ids.sort()
    this.stripeIndex = ids.indexOf(this.selfId)
    this.stripeCount = ids.length
  }

  /** Moves the pieces of our stripe in cand[0..k) to its front; returns how many there are. */
  private ownFirst (k: number): number {
    if (this.stripeStale) this.stripe()
    const count = this.stripeCount
    if (count < 2) return k
    const cand = this.scratch
    const index = this.stripeIndex
    let m = 0
    for (let j = 0; j < k; j++) {
      const piece = cand[j]
      if (piece % count === index) {
        cand[j] = cand[m]
        cand[m++] = piece
      }
    }
    return m
  }

  /** Index in [0, n) from the injected random source. */
  private randomIndex (n: number): number {
    if (n <= 1) return 0
    return Math.min(n - 1, Math.floor(this.random() * n))
  }

  /** Another piece may be started within the memory budget (one may always be). */
  private roomForNewPiece (): boolean {
    return this.active.size === 0 || this.activeBytes + this.pieceLength <= this.maxActiveBytes
  }

  private pickNewPieces (peerId: string, peer: PeerState, max: number, out: BlockSpec[]): void {
    if (!this.roomForNewPiece()) return
    const cand = this.scratch
    let n = this.collectCandidates(peer.has, this.have.count() < this.randomFirstPieces)
    let k = this.bucket
    while (n > 0 && out.length < max) {
      if (k === 0) k = this.nextBucket(n)
      // Rarest first (at random until randomFirstPieces are verified); ties broken at random so
      // peers do not all chase the same piece
      let j = this.randomIndex(k)
      if (this.blockCount(cand[j]) === 1) {
        // A piece of one block (a folder's small file, or a short piece): the bucket (in index
        // order) is taken as a run of neighbours from there, so that pieces asked for together
        // land side by side on disk: a batch of small files in adjacent slots of the pack,
        // written with one call (as libtorrent's piece_extent_affinity does for disks). Larger
        // pieces are written one by one anyway, and a single file served in order outran its
        // downloader: a leecher of 1 GiB held ~20 MB more.
        for (let t = 0; t < k && out.length < max; t++) {
          this.takeFree(this.startPiece(cand[(j + t) % k]), peerId, peer, max, out)
          if (!this.roomForNewPiece()) return
        }
        if (out.length >= max) return
        // the whole bucket was taken: the others stay candidates for the next one
        cand.copyWithin(0, k, n)
        n -= k
        k = 0
        continue
      }
      // equally rare pieces in our stripe first (see stripe()), at random among them: the
      // bucket is cand[0..m) ours, cand[m..k) the others'
      let m = this.ownFirst(k)
      if (m > 0 && m < k) j = this.randomIndex(m)
      for (;;) {
        const piece = cand[j]
        if (j < m) {
          cand[j] = cand[m - 1]
          cand[m - 1] = cand[k - 1]
          m--
        } else {
          cand[j] = cand[k - 1]
        }
        cand[k - 1] = cand[n - 1]
        k--
        n--
        this.takeFree(this.startPiece(piece), peerId, peer, max, out)
        if (!this.roomForNewPiece() || k === 0 || out.length >= max) break
        j = this.randomIndex(m > 0 ? m : k)
      }
      if (!this.roomForNewPiece()) return
    }
  }

  /**
   * One O(pieces) scan collects the unstarted pieces we lack and the peer has (`has`; undefined:
   * every piece) into scratch[0..n), the rarest of them (all of them in random mode) at the
   * front in index order, scratch[0..bucket); returns n. A function of its own: V8 optimizes this
   * hot loop once, apart from the selection's rarely taken paths, which made the whole pick be
   * compiled again and again.
   */
  private collectCandidates (has: Bitfield | undefined, randomMode: boolean): number {
    const cand = this.scratch
    const taken = this.taken
    const avail = this.avail
    let n = 0
    let k = 0
    let min = 0xffffffff
    for (let j = 0; j < taken.length; j++) {
      // the pieces of this byte that are candidates, lowest index in the high bit: in index order
      let bits = ~taken[j] & (has === undefined ? 0xff : has.byte(j))
      while (bits !== 0) {
        const b = Math.clz32(bits) - 24
        bits &= ~(0x80 >> b)
        const i = (j << 3) + b
        const a = randomMode ? 0 : avail[i]
        if (a < min) {
          min = a
          cand[n++] = cand[0]
          cand[0] = i
          k = 1
        } else if (a === min) {
          cand[n++] = cand[k]
          cand[k++] = i
        } else {
          cand[n++] = i
        }
      }
    }
    this.bucket = k
    return n
  }

  /** The rarest bucket ran out: gathers the next one at the front of scratch[0..n), in index order; returns its size. */
  private nextBucket (n: number): number {
    const cand = this.scratch
    const avail = this.avail
    let min = 0xffffffff
    for (let j = 0; j < n; j++) if (avail[cand[j]] < min) min = avail[cand[j]]
    let k = 0
    for (let j = 0; j < n; j++) {
      const piece = cand[j]
      if (avail[piece] === min) {
        cand[j] = cand[k]
        cand[k++] = piece
      }
    }
    cand.subarray(0, k).sort()
    return k
  }

  private pickEndgame (peerId: string, peer: PeerState, max: number, out: BlockSpec[]): void {
    // duplicates of blocks in flight elsewhere, least-duplicated first to spread the requests
    const candidates: Array<{ ap: ActivePiece, b: number, n: number }> = []
    for (const ap of this.active.values()) {
      if (ap.receivedCount === ap.blockCount || !this.has(peer, ap.piece)) continue
      // a piece that failed stays with the one peer fetching it (no duplicates: see pick())
      if (this.solo[ap.piece] === 1) continue
      for (let b = 0; b < ap.blockCount; b++) {
        const requesters = ap.requesters[b]
        if (requesters === undefined || ap.received[b] === 1 || requesters.includes(peerId)) continue
        candidates.push({ ap, b, n: requesters.length })
      }
    }
    candidates.sort((x, y) => x.n - y.n)
    for (const { ap, b } of candidates) {
      if (out.length >= max) break
      const ref = this.blockRef(ap.piece, b)
      ;(ap.requesters[b] as string[]).push(peerId)
      peer.inFlight.set(this.key(ap.piece, b), ref)
      out.push(ref)
    }
  }
}

/** Pipeline depth for one peer: about rate x 1 s / blockSize, clamped to [4, 256]. */
export function requestDepth (bytesPerSecond: number, blockSize: number = BLOCK_SIZE): number {
  if (!(bytesPerSecond > 0) || !(blockSize > 0)) return MIN_REQUEST_DEPTH
  const depth = Math.ceil(bytesPerSecond / blockSize)
  return Math.min(MAX_REQUEST_DEPTH, Math.max(MIN_REQUEST_DEPTH, depth))
}
