/**
 * The swarm's side of choking: whom we upload to is the choker's decision (choker/, pure
 * policy); this shows it each session as a ChokerPeer and applies what it decides — unchoke,
 * choke, and each unchoked peer's share of a capped uplink. Every rechoke interval the choker
 * picks whom we upload to (rechoke); every second between rechokes, trials that went unanswered
 * end, shares follow what each peer sent us, and a seed turn that is over passes on (tick); a
 * peer that becomes interested may take a free slot at once (interested). No timers and no
 * sockets: the swarm runs rechoke and tick on its timers, and passes the sessions in.
 */
import { Choker, type ChokerInit, type ChokerPeer, type UploadShare } from '../choker/choker.js'
import type { Throttle } from '../throttle.js'

/** pieces a leecher may take in one turn of a seed slot (libtorrent's seeding_piece_quota) */
export const SEED_PIECE_QUOTA = 20
/** pieces a peer on trial may take before it must have sent something back (see Choker.review) */
export const TRIAL_PIECE_QUOTA = 4

/** What the choke rounds read of and do to a session (a PeerSession is one). */
export interface ChokeSession {
  readonly remotePeer: string
  readonly peerInterested: boolean
  readonly amInterested: boolean
  readonly amChoking: boolean
  readonly peerChoking: boolean
  readonly connectedAt: number
  /** ms of the last block it sent us, or of its last unchoke, whichever later (0: never) */
  readonly lastBlockAt: number
  /** what it sent us: in all, lately, and in the rate window */
  readonly down: { readonly total: number, rate: () => number, windowBytes: () => number }
  /** what we sent it: in all, and lately */
  readonly up: { readonly total: number, rate: () => number }
  /** when we sent the oldest of our requests it has not answered (undefined: none) */
  oldestRequestAt: () => number | undefined
  choke: () => void
  unchoke: () => void
  /** its weight against the other sessions' on a capped uplink, and a rate it may not exceed */
  setUploadShare: (weight: number, limit: number | undefined) => void
}

/**
 * What the rounds use of the choker (a Choker is one); what it says of each peer for people (its
 * optimistic unchoke, whom it counts as snubbing us) is optional.
 */
export type ChokePolicy = Pick<Choker, 'rechokeInterval' | 'offerFraction' | 'admit' | 'uploadShare' | 'rechoke' | 'review' | 'refreshShares' | 'seedTurnOver'> &
Partial<Pick<Choker, 'optimisticPeer' | 'isSnubbed'>>

export interface ChokeRoundsInit<S extends ChokeSession> {
  /** the policy (swarmChoker() makes the swarm's) */
  choker: ChokePolicy
  /** the open sessions (the swarm's SessionRegistry) */
  sessions: { values: () => Iterable<S>, get: (peerId: string) => S | undefined }
  /** we have every piece: the choker's seeding rules apply */
  seeding: () => boolean
  /** the upload cap all sessions share: a capped share's limit is a fraction of its rate */
  throttle: Pick<Throttle, 'rate' | 'unlimited'>
}

/**
 * The swarm's choker: quotas counted in pieces of `pieceLength` (a seed turn, a trial), under
 * whatever `init` sets.
 */
export function swarmChoker (pieceLength: number, init: ChokerInit = {}): Choker {
  return new Choker({ seedQuota: SEED_PIECE_QUOTA * pieceLength, trialQuota: TRIAL_PIECE_QUOTA * pieceLength, ...init })
}

export class ChokeRounds<S extends ChokeSession> {
  private readonly choker: ChokePolicy
  private readonly sessions: ChokeRoundsInit<S>['sessions']
  private readonly seeding: () => boolean
  private readonly throttle: Pick<Throttle, 'rate' | 'unlimited'>

  constructor (init: ChokeRoundsInit<S>) {
    this.choker = init.choker
    this.sessions = init.sessions
    this.seeding = init.seeding
    this.throttle = init.throttle
  }

  /** ms between rechokes: the swarm runs `rechoke` on this timer. */
  get rechokeInterval (): number {
    return this.choker.rechokeInterval
  }

  /**
   * The session's peer said it is interested (or not). A free upload slot goes at once only to
   * a peer that uploads to us (or, seeding, to whoever asks); anyone else waits for the
   * rechoke: a free-rider kept such slots.
   */
  interested (session: S): void {
    if (!session.peerInterested || !session.amChoking) return
    const peers = this.peers()
    const peer = peers.find(p => p.id === session.remotePeer)
    if (peer !== undefined && this.choker.admit(peer, peers, this.seeding())) {
      this.applyShare(session, this.choker.uploadShare(peer.id))
      session.unchoke()
    }
  }

  /** BEP 3's tit-for-tat: every rechoke interval, the choker decides whom we upload to. */
  rechoke (): void {
    const decision = this.choker.rechoke(this.peers(), this.seeding())
    for (const s of this.sessions.values()) {
      if (decision.unchoked.has(s.remotePeer)) {
        this.applyShare(s, decision.shares.get(s.remotePeer) ?? this.choker.uploadShare(s.remotePeer))
        s.unchoke()
      } else {
        s.choke()
      }
    }
  }

  /**
   * Every second, between rechokes: trials that were not answered end, shares follow what each
   * peer sent us, a seed turn that is over passes on (a rechoke at once).
   */
  tick (): void {
    // one view of the peers a tick (it walks every session's requests), updated as we choke
    const peers = this.peers()
    if (!this.seeding()) {
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
  }

  /**
   * What the choker thinks of `session`'s peer: whether it holds the optimistic unchoke, and
   * whether it snubs us (interested in it, unchoked by it, and no block for the snub timeout).
   */
  flagsOf (session: S): { optimistic: boolean, snubbed: boolean } {
    return {
      optimistic: this.choker.optimisticPeer === session.remotePeer,
      snubbed: this.choker.isSnubbed?.(chokerPeer(session)) ?? false
    }
  }

  /** What the choker is shown of each session. */
  peers (): ChokerPeer[] {
    const out: ChokerPeer[] = []
    for (const s of this.sessions.values()) out.push(chokerPeer(s))
    return out
  }

  /** The choker's share of our capped uplink for `session`: its weight, and a limit if capped. */
  private applyShare (session: S, share: UploadShare): void {
    const limit = share.capped && !this.throttle.unlimited ? this.throttle.rate * this.choker.offerFraction : undefined
    session.setUploadShare(share.weight, limit)
  }
}

/** A session as the choker sees it. */
export function chokerPeer (s: ChokeSession): ChokerPeer {
  return {
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
  }
}
