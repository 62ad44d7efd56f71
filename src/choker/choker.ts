// Upload slot allocation (choking), after BEP 3, Bram Cohen's "Incentives Build Robustness in
// BitTorrent" (section 3) and libtorrent's choker:
// - "unchoke the four peers which have the best upload rate [to us] and are interested" (BEP 3),
//   re-evaluated every ten seconds. A regular slot is reciprocation, so only a peer that uploads
//   to us can have one: a peer that sent us less than `minReciprocation` bytes in the rate window
//   (default two blocks) never keeps or takes a regular slot. A slot kept on a tie at zero, or
//   won with one block, was how a free-rider held regular slots (issue 9);
// - trials: a regular slot nobody earns goes to an interested peer we have never unchoked, until
//   the next rechoke: a newcomer gets its first pieces at once, and an honest one uploads back
//   and earns a regular slot. Each peer gets one trial per connection; after it, only
//   reciprocation or its optimistic turn unchokes it. Without trials, trading pairs formed only
//   one optimistic unchoke at a time: few peers were unchoked, so each of them (the free-rider,
//   as the optimistic unchoke, too) got a larger share of the uplink;
// - optimistic unchoking: "Which peer is optimistically unchoked rotates every 30 seconds"
//   (Cohen). The turn goes to the candidate that has waited longest since its last optimistic
//   unchoke, as libtorrent does; a peer that never had one (a newcomer: "Newly connected peers
//   are three times as likely to start as the current optimistic unchoke") goes first, so it
//   gets pieces to trade soon. Turns, not a weighted random pick each time: with a random pick
//   a free-rider could be chosen again and again by several peers at once (only ties are
//   drawn, once per peer: see ChokerInit.random);
// - anti-snubbing: "if over a minute goes by without getting a single piece from a particular peer,
//   BitTorrent assumes it is 'snubbed' by that peer and doesn't upload to it except as an
//   optimistic unchoke";
// - upload only: "Once a peer is done downloading, it no longer has useful download rates to decide
//   which peers to upload to. The current implementation then switches to preferring peers which it
//   has better upload rates to". We add a round robin on top so every leecher gets served.
// Between rechokes a free slot goes only to a peer that uploads to us, or to one never unchoked
// for its trial (see admit): a free-rider cannot hold it past the next rechoke, nor get another.
// Pure and stateful: the swarm passes the current peers in and applies the decision.
import { BLOCK_SIZE } from '../picker/picker.js'

export interface ChokerPeer {
  id: string
  /** the peer is interested in us */
  interested: boolean
  /** bytes/s it sent us over the last ~20 s */
  downloadRate: number
  /** bytes it sent us over the same window (what downloadRate is measured from) */
  downloaded: number
  /** bytes/s we sent it over the last ~20 s */
  uploadRate: number
  /** ms, clock of `now` */
  connectedAt: number
  /** we currently unchoke it */
  unchoked: boolean
  /** it currently unchokes us */
  unchokesUs: boolean
  /** we are interested in it */
  amInterested: boolean
  /** ms of the last block it sent us, or when it last unchoked us, whichever later (0 = never) */
  lastBlockAt: number
}

export interface ChokerInit {
  /** regular slots (default 4); one optimistic slot comes on top */
  uploadSlots?: number
  /** default 10_000 ms (the swarm runs rechoke on this timer) */
  rechokeInterval?: number
  /** default 30_000 ms */
  optimisticInterval?: number
  /** default 60_000 ms */
  snubTimeout?: number
  /**
   * bytes a peer must have sent us in the rate window to count as uploading to us (default two
   * blocks, 128 KiB: ~6.4 KiB/s over 20 s). One block is not enough: a throttled peer sends one
   * at once from its token bucket's burst however slow it is (a 1 KiB/s free-rider sends a
   * 64 KiB block every 64 s, and that one block used to outrank the honest peers at zero).
   */
  minReciprocation?: number
  now?: () => number
  /**
   * draws each peer's place among peers that waited equally long (all newcomers, at first);
   * seeded in tests. Without it every peer would order them alike (by id, say) and pick the
   * same one at once: a burst for it, then nothing
   */
  random?: () => number
}

export interface ChokeDecision {
  /** everyone to unchoke: regular slots, trials and the optimistic unchoke */
  unchoked: Set<string>
  optimistic: string | undefined
  /** peers on trial until the next rechoke (leeching) */
  trials: Set<string>
  snubbed: Set<string>
}

/** Default of ChokerInit.minReciprocation. */
export const MIN_RECIPROCATION = 2 * BLOCK_SIZE

export class Choker {
  readonly uploadSlots: number
  readonly rechokeInterval: number
  readonly optimisticInterval: number
  readonly snubTimeout: number
  readonly minReciprocation: number
  private readonly now: () => number
  private readonly random: () => number
  private optimistic: string | undefined
  private optimisticSince = 0
  /** when each connected peer last became the optimistic unchoke (absent: never) */
  private readonly lastOptimistic = new Map<string, number>()
  /** each connected peer's lot: its place among peers that waited equally long */
  private readonly lots = new Map<string, number>()
  /** connected peers we have unchoked at some time (they have had their trial) */
  private readonly tried = new Set<string>()
  /** when we first saw each peer unchoked (seed-mode round robin) */
  private readonly unchokedSince = new Map<string, number>()
  /** when each interested peer started waiting choked (seed-mode round robin) */
  private readonly waitingSince = new Map<string, number>()

  constructor (init: ChokerInit = {}) {
    this.uploadSlots = init.uploadSlots ?? 4
    this.rechokeInterval = init.rechokeInterval ?? 10_000
    this.optimisticInterval = init.optimisticInterval ?? 30_000
    this.snubTimeout = init.snubTimeout ?? 60_000
    this.minReciprocation = init.minReciprocation ?? MIN_RECIPROCATION
    this.now = init.now ?? Date.now
    this.random = init.random ?? Math.random
  }

  /** The current optimistic unchoke, if any. */
  get optimisticPeer (): string | undefined {
    return this.optimistic
  }

  isSnubbed (peer: ChokerPeer): boolean {
    // a peer cannot have sent anything before we connected: never measure from before that
    const since = Math.max(peer.lastBlockAt, peer.connectedAt)
    return peer.unchokesUs && peer.amInterested && this.now() - since > this.snubTimeout
  }

  /** It uploads to us, enough to earn a regular slot (if its rate ranks among the best). */
  reciprocates (peer: ChokerPeer): boolean {
    return peer.downloaded >= this.minReciprocation && !this.isSnubbed(peer)
  }

  freeSlot (peers: ChokerPeer[]): boolean {
    let unchoked = 0
    for (const p of peers) if (p.unchoked) unchoked++
    return unchoked < this.uploadSlots + 1
  }

  /**
   * Between rechokes: may `peer`, interested and choked, be unchoked now? Only into a free slot,
   * and when leeching only if it uploads to us or for its trial (never unchoked before; the
   * trial ends at the next rechoke). Anyone else waits for the rechoke and its optimistic turn:
   * a slot handed to whoever asked, every time it asked, was kept by a free-rider. Not waiting
   * for the first trial matters: leechers trade from the start (a rechoke is 10 s away, and a
   * small file is done by then). Seeding: whoever asks (the seed rotation takes it back in turn).
   */
  admit (peer: ChokerPeer, peers: ChokerPeer[], seeding: boolean): boolean {
    if (!peer.interested || peer.unchoked || !this.freeSlot(peers)) return false
    if (seeding || this.reciprocates(peer)) return true
    if (this.tried.has(peer.id) || this.isSnubbed(peer)) return false
    this.startTrial(peer.id, this.now())
    return true
  }

  rechoke (peers: ChokerPeer[], seeding: boolean): ChokeDecision {
    const now = this.now()
    this.observe(peers, now)

    const snubbed = new Set<string>()
    for (const p of peers) if (this.isSnubbed(p)) snubbed.add(p.id)

    const interested = peers.filter(p => p.interested)
    const regular = seeding
      ? this.seedSlots(interested, now)
      : this.leechSlots(interested.filter(p => this.reciprocates(p)))
    const regularIds = new Set(regular.map(p => p.id))
    const trials = new Set<string>()
    if (!seeding) {
      for (const p of this.untried(interested, regularIds, snubbed).slice(0, this.uploadSlots - regular.length)) {
        trials.add(p.id)
        this.startTrial(p.id, now)
      }
    }

    const optimistic = this.chooseOptimistic(interested, new Set([...regularIds, ...trials]), now)
    const unchoked = new Set([...regularIds, ...trials])
    if (optimistic !== undefined) unchoked.add(optimistic)

    this.record(peers, unchoked, now)
    return { unchoked, optimistic, trials, snubbed }
  }

  /** Interested peers we have never unchoked, in the order of their lots. */
  private untried (interested: ChokerPeer[], regular: Set<string>, snubbed: Set<string>): ChokerPeer[] {
    const out = interested.filter(p => !regular.has(p.id) && !snubbed.has(p.id) && !this.tried.has(p.id))
    for (const p of out) this.lot(p.id)
    return out.sort((a, b) => this.lot(a.id) - this.lot(b.id))
  }

  /** A trial is the peer's first turn: its optimistic turns queue up behind it. */
  private startTrial (id: string, now: number): void {
    this.tried.add(id)
    this.lastOptimistic.set(id, now)
  }

  /** Leeching: reciprocate, the best uploaders to us get the slots. */
  private leechSlots (uploaders: ChokerPeer[]): ChokerPeer[] {
    return [...uploaders]
      .sort((a, b) =>
        b.downloadRate - a.downloadRate ||
        // on a tie keep whoever is unchoked already: needless choke/unchoke churn costs both sides
        Number(b.unchoked) - Number(a.unchoked) ||
        byId(a, b))
      .slice(0, this.uploadSlots)
  }

  /**
   * Seeding: the peers we upload to fastest, but a peer that has had a slot for longer than
   * optimisticInterval yields it to interested peers still waiting (longest-waiting first), so
   * every leecher is served over time instead of the same four forever.
   */
  private seedSlots (candidates: ChokerPeer[], now: number): ChokerPeer[] {
    const fresh: ChokerPeer[] = []
    const expired: ChokerPeer[] = []
    const waiting: ChokerPeer[] = []
    for (const p of candidates) {
      const since = this.unchokedSince.get(p.id)
      if (since === undefined) waiting.push(p)
      else if (now - since < this.optimisticInterval) fresh.push(p)
      else expired.push(p)
    }
    const byUpload = (a: ChokerPeer, b: ChokerPeer): number => b.uploadRate - a.uploadRate || byId(a, b)
    fresh.sort(byUpload)
    expired.sort(byUpload)
    waiting.sort((a, b) => (this.waitingSince.get(a.id) ?? now) - (this.waitingSince.get(b.id) ?? now) || byId(a, b))
    return [...fresh, ...waiting, ...expired].slice(0, this.uploadSlots)
  }

  /**
   * The optimistic unchoke: kept for optimisticInterval, then it passes to the candidate that has
   * waited longest since its last optimistic unchoke (libtorrent's rule); one that never had one
   * first (newcomers among them), in the order of their lots.
   */
  private chooseOptimistic (interested: ChokerPeer[], regular: Set<string>, now: number): string | undefined {
    const current = this.optimistic
    const candidates = interested.filter(p => !regular.has(p.id))
    if (current !== undefined && now - this.optimisticSince < this.optimisticInterval &&
        candidates.some(p => p.id === current)) {
      return current
    }
    // rotate: anyone but the previous optimistic unchoke, if there is anyone else
    const pool = candidates.length > 1 ? candidates.filter(p => p.id !== current) : candidates
    if (pool.length === 0) {
      this.optimistic = undefined
      return undefined
    }
    const turn = (p: ChokerPeer): number => this.lastOptimistic.get(p.id) ?? -Infinity
    for (const p of pool) this.lot(p.id) // drawn in the order peers are listed (tests rely on it)
    let chosen = pool[0]
    for (const p of pool.slice(1)) {
      if (turn(p) < turn(chosen) || (turn(p) === turn(chosen) && this.lot(p.id) < this.lot(chosen.id))) chosen = p
    }
    this.makeOptimistic(chosen.id, now)
    return chosen.id
  }

  private lot (id: string): number {
    let lot = this.lots.get(id)
    if (lot === undefined) {
      lot = this.random()
      this.lots.set(id, lot)
    }
    return lot
  }

  private makeOptimistic (id: string, now: number): void {
    this.tried.add(id)
    this.optimistic = id
    this.optimisticSince = now
    this.lastOptimistic.set(id, now)
  }

  /** Syncs the round-robin clocks with what the swarm reports (it may unchoke via admit). */
  private observe (peers: ChokerPeer[], now: number): void {
    const present = new Set<string>()
    for (const p of peers) {
      present.add(p.id)
      if (p.unchoked) {
        this.tried.add(p.id)
        if (!this.unchokedSince.has(p.id)) this.unchokedSince.set(p.id, now)
        this.waitingSince.delete(p.id)
      } else {
        this.unchokedSince.delete(p.id)
        if (p.interested) {
          if (!this.waitingSince.has(p.id)) this.waitingSince.set(p.id, now)
        } else {
          this.waitingSince.delete(p.id)
        }
      }
    }
    // forget disconnected peers
    for (const id of this.unchokedSince.keys()) if (!present.has(id)) this.unchokedSince.delete(id)
    for (const id of this.waitingSince.keys()) if (!present.has(id)) this.waitingSince.delete(id)
    for (const id of this.lastOptimistic.keys()) if (!present.has(id)) this.lastOptimistic.delete(id)
    for (const id of this.lots.keys()) if (!present.has(id)) this.lots.delete(id)
    for (const id of this.tried) if (!present.has(id)) this.tried.delete(id)
    if (this.optimistic !== undefined && !present.has(this.optimistic)) this.optimistic = undefined
  }

  /** Applies our own decision to the clocks, as the swarm will. */
  private record (peers: ChokerPeer[], unchoked: Set<string>, now: number): void {
    for (const p of peers) {
      if (unchoked.has(p.id)) {
        this.tried.add(p.id)
        if (!this.unchokedSince.has(p.id)) this.unchokedSince.set(p.id, now)
        this.waitingSince.delete(p.id)
      } else {
        this.unchokedSince.delete(p.id)
        if (p.interested && !this.waitingSince.has(p.id)) this.waitingSince.set(p.id, now)
      }
    }
  }
}

function byId (a: ChokerPeer, b: ChokerPeer): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
