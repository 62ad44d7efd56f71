/**
 * Peer exchange (as BEP 11, over our wire), the swarm's side of it: each connected member
 * periodically gets a random subset of the other members we are connected to, so a peer that
 * reached one member soon knows the rest without a tracker. It keeps the view we gossip from
 * (filled from the listen addresses identify reports for connected peers), when each session is
 * due its next `peers` message, and how often each peer may be listened to. The swarm tells it of
 * sessions and messages, and acts on its outcomes through a PeerExchangeDelegate (send a `peers`
 * message, dial what was learned). What a `peers` message tells us goes into the peer book as
 * `pex` (the book refuses our own id); the view stays apart from the book: it holds only peers we
 * had a session with, at the addresses they announced themselves, so what others tell us is
 * never passed on unchecked. No sockets, no timers and no libp2p types: the clock and randomness
 * are injected, so tests drive it with a fake clock.
 */
import type { PeerBook } from '../discovery/peer-book.js'
import { fromWirePeers, PexView, PEX_MAX_PEERS, toWirePeers } from '../discovery/pex.js'
import type { PeerAddress } from '../discovery/types.js'
import { withoutPeerId } from '../net/addr.js'
import { shortId } from '../session/session.js'
import type { WirePeer } from '../wire/codec.js'

/** What the exchange reads of a session (a PeerSession is one). */
export interface ExchangeSession {
  readonly remotePeer: string
  /** its have-state has arrived: only then is it told of others */
  readonly haveStateReceived: boolean
  readonly closed: boolean
}

/** The outcomes the swarm acts on. */
export interface PeerExchangeDelegate {
  /** send `peers` to the session with `peerId` (an empty list sends nothing) */
  send: (peerId: string, peers: WirePeer[]) => void
  /** peers a `peers` message told us of, as the peer book passed them on (not us, each once): dial those we are not talking to */
  discovered: (peers: PeerAddress[]) => void
}

export interface PeerExchangeInit {
  /** the peers we know of: what we hear goes in as `pex`; its `self` is never passed on */
  book: PeerBook
  delegate: PeerExchangeDelegate
  /** ms between `peers` messages to each session (default 30_000; the first goes after min(1 s, this)) */
  interval?: number
  /** the view we gossip from (default a new PexView on the same clock and randomness) */
  view?: PexView
  log?: (msg: string) => void
  now?: () => number
  random?: () => number
}

export class PeerExchange {
  private readonly book: PeerBook
  private readonly delegate: PeerExchangeDelegate
  private readonly interval: number
  private readonly view: PexView
  private readonly log: (msg: string) => void
  private readonly now: () => number
  /** when each session is due its next peer-exchange message */
  private readonly due = new Map<string, number>()
  /** when each peer's next `peers` message is listened to */
  private readonly listenFrom = new Map<string, number>()

  constructor (init: PeerExchangeInit) {
    this.book = init.book
    this.delegate = init.delegate
    this.interval = init.interval ?? 30_000
    this.log = init.log ?? (() => {})
    this.now = init.now ?? Date.now
    this.view = init.view ?? new PexView({ random: init.random, now: this.now })
  }

  /** A session opened: its first `peers` message is due soon, the rest every interval. */
  sessionOpened (peerId: string): void {
    this.due.set(peerId, this.now() + Math.min(1000, this.interval))
  }

  sessionClosed (peerId: string): void {
    this.due.delete(peerId)
    this.listenFrom.delete(peerId)
  }

  /**
   * Sends each session whose message is due (and whose have-state has arrived) a random sample
   * of the view, without itself or us.
   */
  tick (sessions: Iterable<ExchangeSession>): void {
    const now = this.now()
    const due = [...sessions].filter(s => s.haveStateReceived && (this.due.get(s.remotePeer) ?? Infinity) <= now)
    // what we pass on was learned when each session got its have-state and from identify
    // events since: no peer-store reads here, in a loop that runs every second
    for (const s of due) {
      if (s.closed) continue
      this.due.set(s.remotePeer, now + this.interval)
      this.delegate.send(s.remotePeer, toWirePeers(this.view.sample(PEX_MAX_PEERS, new Set([s.remotePeer, this.book.self]))))
    }
  }

  /** A `peers` message from `from`: written to the book, and what it passes on goes to `discovered`. */
  received (from: string, raw: WirePeer[]): void {
    const due = this.listenFrom.get(from) ?? 0
    const now = this.now()
    // gossip is periodic: a peer that sends it much more often gets ignored, not obeyed
    if (now < due) return
    this.listenFrom.set(from, now + Math.min(5000, this.interval / 2))
    // the codec already refuses more than PEX_MAX_PEERS entries; this keeps the module honest alone
    const { peers, dropped } = fromWirePeers(raw.slice(0, PEX_MAX_PEERS))
    if (dropped > 0) this.log(`peer exchange from ${shortId(from)}: dropped ${dropped} malformed entries`)
    const passed = this.book.add(peers, 'pex')
    if (passed.length > 0) this.delegate.discovered(passed)
  }

  /**
   * A connected peer's listen addresses (as identify reports them): worth passing on to others.
   * Relayed addresses are not (the relay's, not the peer's), and the `/p2p/<id>` suffix goes.
   */
  learned (peerId: string, multiaddrs: string[]): void {
    const usable = multiaddrs.filter(a => !a.includes('/p2p-circuit')).map(withoutPeerId)
    if (usable.length > 0) this.view.add({ peerId, multiaddrs: usable })
  }

  /** `peerId` is not to be passed on any more (it did not answer a dial, or it is banned). */
  forget (peerId: string): void {
    this.view.remove(peerId)
  }
}
