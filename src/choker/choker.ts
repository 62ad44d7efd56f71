// Upload slot allocation (choking), after BEP 3, Bram Cohen's "Incentives Build Robustness in
// BitTorrent" (section 3), libtorrent's choker and PropShare (Levin et al., "BitTorrent is an
// Auction", SIGCOMM 2008). Issue 9's findings are why each rule is as it is:
// - regular slots are reciprocation: "unchoke the peers which have the best upload rate [to us]
//   and are interested" (BEP 3), re-evaluated every ten seconds. Only a peer that sent us at least
//   `minReciprocation` bytes in the rate window (two blocks) keeps or takes one: a slot kept on a
//   tie at zero, or won with one block, was how a free-rider held regular slots. Eight of them
//   (libtorrent's unchoke_slots_limit), not BEP 3's four: with four, a peer that came a second
//   after the others found their slots taken and starved for twenty seconds (a third of a run);
//   with proportional shares, more slots cost the best partners nothing;
// - proportional shares: with an upload cap, the peers that upload to us share the uplink in
//   proportion to what each sent us in the window (refreshed every second, not only at rechokes);
//   a trial or optimistic unchoke gets half an average share. Equal shares cannot make a generous
//   peer get more: in a small swarm everyone unchokes nearly everyone, so each peer got about the
//   sum of the others' uplinks over their slots, and the fastest uploaders, who do not get their
//   own uplink, finished last;
// - trials: a regular slot nobody earns goes to an interested peer we have never unchoked, until
//   the next rechoke, and when every slot is taken one more, the newcomer slot, takes one such
//   peer at a time: a newcomer gets its first pieces at once, and an honest one uploads back and
//   earns a regular slot. One trial per peer per connection, withdrawn early (see review) from a
//   peer that leaves our requests unanswered or takes four pieces without sending anything back:
//   at the start every peer is on trial, and a free-rider lived on ten seconds of them;
// - optimistic unchoking: "Which peer is optimistically unchoked rotates every 30 seconds"
//   (Cohen). The turn goes to the candidate that has waited longest since its last optimistic
//   unchoke, as libtorrent does; a peer that never had one (a newcomer: "Newly connected peers
//   are three times as likely to start as the current optimistic unchoke") goes first. Turns,
//   not a weighted random pick: with a random pick a free-rider could be chosen again and again
//   by several peers at once (only ties are drawn, once per peer: see ChokerInit.random). The
//   turn is an offer: a peer with pieces we want that sent nothing back after a rechoke interval
//   loses it then, sits out the next optimistic interval, and its next turn is capped at its share
//   of a full uplink (it may not soak up what the others leave unused). Every peer gave a
//   free-rider its first optimistic turn at once, and thirty seconds of it was a third of a run;
// - anti-snubbing: "if over a minute goes by without getting a single piece from a particular peer,
//   BitTorrent assumes it is 'snubbed' by that peer and doesn't upload to it except as an
//   optimistic unchoke";
// - upload only: "Once a peer is done downloading, it no longer has useful download rates to decide
//   which peers to upload to. The current implementation then switches to preferring peers which it
//   has better upload rates to". We add a round robin on top so every leecher gets served, turns
//   of 20 pieces (libtorrent's seeding_piece_quota) or 30 s, whichever comes first.
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
  /** bytes we have sent it since it connected (seed rotation: its quota per turn) */
  uploaded: number
  /** bytes it has sent us since it connected (seeding: did it ever trade with us?) */
  downloadedTotal: number
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
  /** ms at which we sent the oldest of our requests it has not answered (undefined: none) */
  requestedAt?: number
}

export interface ChokerInit {
  /** regular slots (default 8, libtorrent's unchoke_slots_limit); one optimistic slot comes on top */
  uploadSlots?: number
  /** default 10_000 ms (the swarm runs rechoke on this timer) */
  rechokeInterval?: number
  /** default 30_000 ms */
  optimisticInterval?: number
  /** default 60_000 ms */
  snubTimeout?: number
  /**
   * seeding: bytes a leecher may take in one turn of a regular slot before it yields the slot to
   * a waiting one (default 4 MiB; the swarm passes 20 pieces, libtorrent's seeding_piece_quota).
   * The turn ends after optimisticInterval too, whichever comes first
   */
  seedQuota?: number
  /**
   * leeching: a trial is withdrawn at the next tick this long after it began (default a third of
   * rechokeInterval) if the peer has left our requests unanswered for as long and sent us less
   * than minReciprocation in the window (see review)
   */
  trialGrace?: number
  /**
   * leeching: bytes a peer may take in its trial without sending us minReciprocation back; then
   * the trial is withdrawn at the next tick (default 1 MiB; the swarm passes 4 pieces: a
   * newcomer's first pieces, to trade with)
   */
  trialQuota?: number
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
  /** each unchoked peer's part of a capped uplink (see uploadShare) */
  shares: Map<string, UploadShare>
  optimistic: string | undefined
  /** peers on trial until the next rechoke (leeching) */
  trials: Set<string>
}

/** How an unchoked peer shares a capped uplink with the others. */
export interface UploadShare {
  /** its part relative to the other unchoked peers' (1 = an average regular slot) */
  weight: number
  /**
   * the optimistic unchoke: it gets at most offerFraction of the uplink, even when the others
   * leave some of it unused
   */
  capped: boolean
}

/** Default of ChokerInit.minReciprocation. */
export const MIN_RECIPROCATION = 2 * BLOCK_SIZE

/**
 * The upload weight of a trial or optimistic unchoke, against 1 for the average regular slot:
 * enough for a newcomer's first pieces, too little to live on for a peer that never uploads.
 */
export const OFFER_WEIGHT = 0.5

export class Choker {
  readonly uploadSlots: number
  readonly rechokeInterval: number
  readonly optimisticInterval: number
  readonly snubTimeout: number
  readonly seedQuota: number
  readonly trialGrace: number
  readonly trialQuota: number
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
  /** when we first saw each peer unchoked, and what we had sent it by then (seed rotation) */
  private readonly unchokedSince = new Map<string, { at: number, uploaded: number }>()
  /**
   * peers that let an offer (a trial or an optimistic turn) pass without sending anything back,
   * and when: their next optimistic turn is capped, and comes no sooner than optimisticInterval
   * after that
   */
  private readonly declined = new Map<string, number>()
  /** the peer on trial in the newcomer slot (see admit), until the next rechoke */
  private newcomer: string | undefined
  /** peers on trial now: when the trial began, and what we had sent it by then */
  private readonly trialSince = new Map<string, { at: number, uploaded: number }>()
  /** when each interested peer started waiting choked (seed-mode round robin) */
  private readonly waitingSince = new Map<string, number>()
  /** the upload share given to each unchoked peer at the last rechoke or admit */
  private readonly shares = new Map<string, UploadShare>()

  constructor (init: ChokerInit = {}) {
    this.uploadSlots = init.uploadSlots ?? 8
    this.rechokeInterval = init.rechokeInterval ?? 10_000
    this.optimisticInterval = init.optimisticInterval ?? 30_000
    this.snubTimeout = init.snubTimeout ?? 60_000
    this.seedQuota = init.seedQuota ?? 4 * 1024 * 1024
    this.trialGrace = init.trialGrace ?? this.rechokeInterval / 3
    this.trialQuota = init.trialQuota ?? 1024 * 1024
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

  /** `id`'s share of a capped uplink (every peer alike when seeding): the swarm applies it. */
  uploadShare (id: string): UploadShare {
    return this.shares.get(id) ?? REGULAR
  }

  /** The most of a capped uplink the optimistic unchoke may take: its weight against full regular slots. */
  get offerFraction (): number {
    return OFFER_WEIGHT / (this.uploadSlots + OFFER_WEIGHT)
  }

  freeSlot (peers: ChokerPeer[]): boolean {
    let unchoked = 0
    for (const p of peers) if (p.unchoked) unchoked++
    return unchoked < this.uploadSlots + 1
  }

  /**
   * Between rechokes: may `peer`, interested and choked, be unchoked now? Into a free slot,
   * and when leeching only if it uploads to us or for its trial (never unchoked before; the
   * trial ends at the next rechoke). Anyone else waits for the rechoke and its optimistic turn:
   * a slot handed to whoever asked, every time it asked, was kept by a free-rider. Not waiting
   * for the first trial matters: leechers trade from the start (a rechoke is 10 s away, and a
   * small file is done by then). When every slot is taken, one more, the newcomer slot, takes
   * one trial at a time: a peer that arrived after the others had paired up waited up to 30 s
   * for an optimistic turn and finished last whatever its uplink (issue 9's benchmark). Seeding:
   * whoever asks, into a free slot (the seed rotation takes it back in turn).
   */
  admit (peer: ChokerPeer, peers: ChokerPeer[], seeding: boolean): boolean {
    if (!peer.interested || peer.unchoked) return false
    const free = this.freeSlot(peers)
    if (free && (seeding || this.reciprocates(peer))) {
      this.shares.set(peer.id, REGULAR)
      return true
    }
    if (seeding || this.tried.has(peer.id) || this.isSnubbed(peer)) return false
    if (!free) {
      const newcomer = this.newcomer
      if (newcomer !== undefined && peers.some(p => p.id === newcomer && p.unchoked)) return false
      this.newcomer = peer.id
    }
    this.startTrial(peer, this.now())
    this.shares.set(peer.id, OFFER)
    return true
  }

  /**
   * Between rechokes (the swarm calls it every second): the trials to withdraw now. A trial is
   * an offer like the optimistic unchoke: a peer that leaves our requests unanswered for
   * trialGrace, or has taken trialQuota bytes and sent next to nothing back, does not keep the
   * slot until the rechoke. Honest leechers that unchoke us answer
   * at once; at the start every peer is on trial, and a free-rider held a full share of every
   * uplink for those ten seconds.
   */
  review (peers: ChokerPeer[]): string[] {
    const now = this.now()
    const out: string[] = []
    for (const p of peers) {
      const since = this.trialSince.get(p.id)
      if (since === undefined || !p.unchoked || this.reciprocates(p)) continue
      // our requests have waited on it for trialGrace and nothing came: declined. One that
      // chokes us may just have its slots full (of other newcomers, at the start), and one we
      // ask nothing has had no chance to answer: they keep the trial, up to its quota
      const declined = now - since.at >= this.trialGrace && p.requestedAt !== undefined &&
        now - p.requestedAt >= this.trialGrace && now - p.lastBlockAt >= this.trialGrace
      // the quota counts only once the peer has had trialGrace to answer: uncapped, four pieces
      // go out in milliseconds, before any peer could send anything back
      const overQuota = now - since.at >= this.trialGrace && p.uploaded - since.uploaded >= this.trialQuota
      if (declined || overQuota) {
        out.push(p.id)
        this.declined.set(p.id, now)
        this.trialSince.delete(p.id)
        this.shares.delete(p.id)
      }
    }
    return out
  }

  /**
   * Between rechokes (the swarm calls it every second): the unchoked peers' shares of a capped
   * uplink, from what each sent us in the window up to now. Slots change at rechokes; shares
   * follow contributions second by second, so a peer that starts to upload to us, a newcomer
   * on trial among them, is paid back at once and not ten seconds later.
   */
  refreshShares (peers: ChokerPeer[], seeding: boolean): Map<string, UploadShare> {
    return this.sharesOf(peers.filter(p => p.unchoked), seeding, this.optimistic)
  }

  /**
   * Seeding, between rechokes (the swarm calls it every second): has a leecher taken its
   * seedQuota in its turn while another waits? Then the swarm rechokes at once instead of at
   * the next interval: with 20 pieces a turn, a turn can be over in a few seconds, and a peer
   * that arrived last waited a whole interval or more for its first seed slot.
   */
  seedTurnOver (peers: ChokerPeer[]): boolean {
    if (!peers.some(p => p.interested && !p.unchoked)) return false
    return peers.some(p => {
      const since = this.unchokedSince.get(p.id)
      return p.unchoked && since !== undefined && p.uploaded - since.uploaded >= this.seedQuota
    })
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
    this.trialSince.clear()
    this.newcomer = undefined
    if (!seeding) {
      for (const p of this.untried(interested, regularIds, snubbed).slice(0, this.uploadSlots - regular.length)) {
        trials.add(p.id)
        this.startTrial(p, now)
      }
    }

    const optimistic = this.chooseOptimistic(interested, new Set([...regularIds, ...trials]), now)
    const unchoked = new Set([...regularIds, ...trials])
    if (optimistic !== undefined) unchoked.add(optimistic)

    const shares = this.sharesOf(peers.filter(p => unchoked.has(p.id)), seeding, optimistic)
    this.record(peers, unchoked, now)
    return { unchoked, shares, optimistic, trials }
  }

  /**
   * The shares of `unchoked`: seeding, every peer alike. Leeching, the peers that upload to us
   * (regular slots, and trials that answered) in proportion to what each sent us in the window,
   * averaging 1; the others (trials, the optimistic unchoke) OFFER_WEIGHT, and an optimistic
   * unchoke that declined an offer before is capped too. Remembered for uploadShare.
   */
  private sharesOf (unchoked: ChokerPeer[], seeding: boolean, optimistic: string | undefined): Map<string, UploadShare> {
    const shares = new Map<string, UploadShare>()
    const paying = seeding ? [] : unchoked.filter(p => this.reciprocates(p))
    let total = 0
    for (const p of paying) total += p.downloaded
    for (const p of paying) shares.set(p.id, { weight: (p.downloaded * paying.length) / total, capped: false })
    for (const p of unchoked) {
      if (shares.has(p.id)) continue
      if (seeding) shares.set(p.id, this.refusedToTrade(p) ? OPTIMISTIC_CAPPED : REGULAR)
      else if (p.id === optimistic && this.declined.has(p.id)) shares.set(p.id, OPTIMISTIC_CAPPED)
      else shares.set(p.id, OFFER)
    }
    this.shares.clear()
    for (const [id, share] of shares) this.shares.set(id, share)
    return shares
  }

  /**
   * Seeding: it let an offer of ours pass while we were leeching (see review and declines) and
   * has not sent us minReciprocation since it connected. A seed still serves it in turn, at
   * half an average share: leechers that finished first kept serving a free-rider a full share,
   * and it drew twice the honest leechers' rate from them (issue 9's benchmark). A seeder that
   * never leeched has made no offers, and serves everyone alike.
   */
  private refusedToTrade (peer: ChokerPeer): boolean {
    return this.declined.has(peer.id) && peer.downloadedTotal < this.minReciprocation
  }

  /** Interested peers we have never unchoked, in the order of their lots. */
  private untried (interested: ChokerPeer[], regular: Set<string>, snubbed: Set<string>): ChokerPeer[] {
    const out = interested.filter(p => !regular.has(p.id) && !snubbed.has(p.id) && !this.tried.has(p.id))
    for (const p of out) this.lot(p.id)
    return out.sort((a, b) => this.lot(a.id) - this.lot(b.id))
  }

  /** A trial is the peer's first turn: its optimistic turns queue up behind it. */
  private startTrial (peer: ChokerPeer, now: number): void {
    this.tried.add(peer.id)
    this.lastOptimistic.set(peer.id, now)
    this.trialSince.set(peer.id, { at: now, uploaded: peer.uploaded })
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
   * optimisticInterval, or taken seedQuota bytes in it, yields it to interested peers still
   * waiting (longest-waiting first), so every leecher is served over time instead of the same
   * four forever. The quota keeps turns short when the file is: with 30 s turns alone, the four
   * leechers a seeder served first had a third of a 64 MiB file from it before anyone else had
   * a turn, and they finished first whatever they gave (issue 9's benchmark).
   */
  private seedSlots (candidates: ChokerPeer[], now: number): ChokerPeer[] {
    const fresh: ChokerPeer[] = []
    const expired: ChokerPeer[] = []
    const waiting: ChokerPeer[] = []
    for (const p of candidates) {
      const since = this.unchokedSince.get(p.id)
      if (since === undefined) waiting.push(p)
      else if (now - since.at < this.optimisticInterval && p.uploaded - since.uploaded < this.seedQuota) fresh.push(p)
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
    const held = candidates.find(p => p.id === current)
    if (held !== undefined && now - this.optimisticSince < this.optimisticInterval) {
      if (!this.declines(held, now)) return held.id
      this.declined.set(held.id, now)
    }
    // rotate: anyone but the previous optimistic unchoke, if there is anyone else; a peer that
    // declined an offer sits out an optimistic interval, even when nobody else waits (with every
    // honest peer in a regular slot, a free-rider was the only candidate, turn after turn)
    const rested = candidates.filter(p => now - (this.declined.get(p.id) ?? -Infinity) >= this.optimisticInterval)
    const pool = rested.length > 1 ? rested.filter(p => p.id !== current) : rested
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

  /**
   * The optimistic unchoke was an offer it did not take up: a rechoke interval into its turn, it
   * has pieces we want and still sent us less than minReciprocation. An honest peer has by then
   * rechoked once and ranked us among the peers that upload to it; a free-rider never will.
   */
  private declines (peer: ChokerPeer, now: number): boolean {
    // timers drift: a rechoke that comes a little early still counts as one interval
    return now - this.optimisticSince >= 0.9 * this.rechokeInterval && peer.amInterested && !this.reciprocates(peer)
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
        if (!this.unchokedSince.has(p.id)) this.unchokedSince.set(p.id, { at: now, uploaded: p.uploaded })
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
    for (const id of this.trialSince.keys()) if (!present.has(id)) this.trialSince.delete(id)
    for (const id of this.declined.keys()) if (!present.has(id)) this.declined.delete(id)
    if (this.optimistic !== undefined && !present.has(this.optimistic)) this.optimistic = undefined
  }

  /** Applies our own decision to the clocks, as the swarm will. */
  private record (peers: ChokerPeer[], unchoked: Set<string>, now: number): void {
    for (const p of peers) {
      if (unchoked.has(p.id)) {
        this.tried.add(p.id)
        if (!this.unchokedSince.has(p.id)) this.unchokedSince.set(p.id, { at: now, uploaded: p.uploaded })
        this.waitingSince.delete(p.id)
      } else {
        this.unchokedSince.delete(p.id)
        if (p.interested && !this.waitingSince.has(p.id)) this.waitingSince.set(p.id, now)
      }
    }
  }
}

const REGULAR: UploadShare = Object.freeze({ weight: 1, capped: false })
const OFFER: UploadShare = Object.freeze({ weight: OFFER_WEIGHT, capped: false })
const OPTIMISTIC_CAPPED: UploadShare = Object.freeze({ weight: OFFER_WEIGHT, capped: true })

function byId (a: ChokerPeer, b: ChokerPeer): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
