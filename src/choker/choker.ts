// Upload slot allocation (choking), after BEP 3 and Bram Cohen's "Incentives Build Robustness in
// BitTorrent" (section 3):
// - "The currently deployed BitTorrent ... unchoke the four peers which have the best upload rate
//   [to us] and are interested" (BEP 3), re-evaluated every ten seconds;
// - optimistic unchoking: "Which peer is optimistically unchoked rotates every 30 seconds. Newly
//   connected peers are three times as likely to start as the current optimistic unchoke as
//   anywhere else in the rotation";
// - anti-snubbing: "if over a minute goes by without getting a single piece from a particular peer,
//   BitTorrent assumes it is 'snubbed' by that peer and doesn't upload to it except as an
//   optimistic unchoke";
// - upload only: "Once a peer is done downloading, it no longer has useful download rates to decide
//   which peers to upload to. The current implementation then switches to preferring peers which it
//   has better upload rates to". We add a round robin on top so every leecher gets served.
// Pure and stateful: the swarm passes the current peers in and applies the decision.

export interface ChokerPeer {
  id: string
  /** the peer is interested in us */
  interested: boolean
  /** bytes/s it sent us over the last ~20 s */
  downloadRate: number
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
  /** default 4 */
  uploadSlots?: number
  /** default 10_000 ms (the swarm runs rechoke on this timer) */
  rechokeInterval?: number
  /** default 30_000 ms */
  optimisticInterval?: number
  /** default 60_000 ms */
  snubTimeout?: number
  /** default 60_000 ms: peers connected more recently are 3x as likely optimistic picks */
  newcomerWindow?: number
  now?: () => number
  random?: () => number
}

export interface ChokeDecision {
  unchoked: Set<string>
  optimistic: string | undefined
  snubbed: Set<string>
}

/** How much likelier a newcomer is to become the optimistic unchoke. */
export const NEWCOMER_WEIGHT = 3

export class Choker {
  readonly uploadSlots: number
  readonly rechokeInterval: number
  readonly optimisticInterval: number
  readonly snubTimeout: number
  readonly newcomerWindow: number
  private readonly now: () => number
  private readonly random: () => number
  private optimistic: string | undefined
  private optimisticSince = 0
  /** when we first saw each peer unchoked (seed-mode round robin) */
  private readonly unchokedSince = new Map<string, number>()
  /** when each interested peer started waiting choked (seed-mode round robin) */
  private readonly waitingSince = new Map<string, number>()

  constructor (init: ChokerInit = {}) {
    this.uploadSlots = init.uploadSlots ?? 4
    this.rechokeInterval = init.rechokeInterval ?? 10_000
    this.optimisticInterval = init.optimisticInterval ?? 30_000
    this.snubTimeout = init.snubTimeout ?? 60_000
    this.newcomerWindow = init.newcomerWindow ?? 60_000
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

  freeSlot (peers: ChokerPeer[]): boolean {
    let unchoked = 0
    for (const p of peers) if (p.unchoked) unchoked++
    return unchoked < this.uploadSlots + 1
  }

  rechoke (peers: ChokerPeer[], seeding: boolean): ChokeDecision {
    const now = this.now()
    this.observe(peers, now)

    const snubbed = new Set<string>()
    for (const p of peers) if (this.isSnubbed(p)) snubbed.add(p.id)

    const interested = peers.filter(p => p.interested)
    const regular = seeding
      ? this.seedSlots(interested, now)
      : this.leechSlots(interested.filter(p => !snubbed.has(p.id)))
    const regularIds = new Set(regular.map(p => p.id))

    const optimistic = this.chooseOptimistic(interested, regularIds, now)
    const unchoked = new Set(regularIds)
    if (optimistic !== undefined) unchoked.add(optimistic)

    this.record(peers, unchoked, now)
    return { unchoked, optimistic, snubbed }
  }

  /** Leeching: reciprocate, the best uploaders to us get the slots. */
  private leechSlots (candidates: ChokerPeer[]): ChokerPeer[] {
    return [...candidates]
      .sort((a, b) =>
        b.downloadRate - a.downloadRate ||
        // on a tie keep whoever is unchoked already: needless choke/unchoke churn costs both sides
        Number(b.unchoked) - Number(a.unchoked))
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
    const byUpload = (a: ChokerPeer, b: ChokerPeer): number => b.uploadRate - a.uploadRate
    fresh.sort(byUpload)
    expired.sort(byUpload)
    waiting.sort((a, b) => (this.waitingSince.get(a.id) ?? now) - (this.waitingSince.get(b.id) ?? now))
    return [...fresh, ...waiting, ...expired].slice(0, this.uploadSlots)
  }

  private chooseOptimistic (interested: ChokerPeer[], regular: Set<string>, now: number): string | undefined {
    const current = this.optimistic
    const candidates = interested.filter(p => !regular.has(p.id))
    if (current !== undefined && now - this.optimisticSince < this.optimisticInterval &&
        candidates.some(p => p.id === current)) {
      return current
    }
    // rotate: prefer anyone but the previous optimistic unchoke
    const pool = candidates.length > 1 ? candidates.filter(p => p.id !== current) : candidates
    if (pool.length === 0) {
      this.optimistic = undefined
      return undefined
    }
    const weights = pool.map(p => now - p.connectedAt < this.newcomerWindow ? NEWCOMER_WEIGHT : 1)
    const total = weights.reduce((s, w) => s + w, 0)
    let r = Math.min(this.random(), 1 - Number.EPSILON) * total
    let chosen = pool[pool.length - 1]
    for (let i = 0; i < pool.length; i++) {
      r -= weights[i]
      if (r < 0) {
        chosen = pool[i]
        break
      }
    }
    this.optimistic = chosen.id
    this.optimisticSince = now
    return chosen.id
  }

  /** Syncs the round-robin clocks with what the swarm reports (it may unchoke via freeSlot). */
  private observe (peers: ChokerPeer[], now: number): void {
    const present = new Set<string>()
    for (const p of peers) {
      present.add(p.id)
      if (p.unchoked) {
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
    if (this.optimistic !== undefined && !present.has(this.optimistic)) this.optimistic = undefined
  }

  /** Applies our own decision to the clocks, as the swarm will. */
  private record (peers: ChokerPeer[], unchoked: Set<string>, now: number): void {
    for (const p of peers) {
      if (unchoked.has(p.id)) {
        if (!this.unchokedSince.has(p.id)) this.unchokedSince.set(p.id, now)
        this.waitingSince.delete(p.id)
      } else {
        this.unchokedSince.delete(p.id)
        if (p.interested && !this.waitingSince.has(p.id)) this.waitingSince.set(p.id, now)
      }
    }
  }
}
