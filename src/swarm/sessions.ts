/**
 * The swarm's session registry: the open session with each peer (at most one per peer id), the
 * rule that decides which of two connections to the same peer is kept, and what the swarm keeps
 * beside each session for as long as it is registered — the remote IP address (a slot's share is
 * counted per address, see Admission) and how we learned of the peer (for stats). Iteration is in
 * the order sessions were added. No libp2p types: the swarm passes plain facts (peer ids,
 * directions, addresses) and sessions typed by the little the registry reads of them.
 */
import { emptySources, type PeerSource } from '../discovery/types.js'
import type { SessionFacts } from './admission.js'

export type Direction = 'inbound' | 'outbound'

/** What the registry reads of a session (a PeerSession is one). */
export interface RegistrySession {
  readonly remotePeer: string
  /** who opened the stream: the peer ('inbound') or we ('outbound') */
  readonly direction: Direction
  /** ms when the session began */
  readonly connectedAt: number
  /** ms of the last block received / sent (0: none yet) */
  readonly lastDownloadAt: number
  readonly lastUploadAt: number
  readonly amInterested: boolean
  readonly peerInterested: boolean
}

/** What is kept beside a session while it is registered. */
export interface SessionInfo {
  /** the remote's IP address, when known */
  ip?: string
  /** how we learned of the peer */
  source: PeerSource
  /** how we reach it (default 'direct') */
  via?: PeerVia
  /** the remote address of the session's connection, without `/p2p/<id>`, when known */
  address?: string
}

/**
 * How we reach a peer: over a direct connection, through a relay, or directly after DCUtR
 * upgraded a relayed connection ('hole-punched').
 */
export type PeerVia = 'direct' | 'relayed' | 'hole-punched'
export const PEER_VIAS: readonly PeerVia[] = ['direct', 'relayed', 'hole-punched']

export interface SessionRegistryInit {
  /** our own peer id (the duplicate-connection tie-break compares it with the remote's) */
  self: string
}

interface Entry<S> extends SessionInfo {
  session: S
}

export class SessionRegistry<S extends RegistrySession = RegistrySession> {
  private readonly self: string
  private readonly entries = new Map<string, Entry<S>>()

  constructor (init: SessionRegistryInit) {
    this.self = init.self
  }

  /** Sessions registered now. */
  get size (): number {
    return this.entries.size
  }

  has (peerId: string): boolean {
    return this.entries.has(peerId)
  }

  get (peerId: string): S | undefined {
    return this.entries.get(peerId)?.session
  }

  /** The sessions, in the order they were added. */
  * values (): IterableIterator<S> {
    for (const e of this.entries.values()) yield e.session
  }

  /**
   * A session with the peer of `existing` is being opened in `direction`: is the new one kept
   * (the caller closes `existing`), or is it dropped as a duplicate?
   */
  keepsNew (existing: S, direction: Direction): boolean {
    // Both ends dialled at once: keep the stream opened by the peer whose id sorts first, so
    // both ends keep the same one. The same direction twice is a reconnect: the new one wins.
    return existing.direction === direction || (direction === 'outbound') === (this.self < existing.remotePeer)
  }

  /** Registers `session` under its peer id, with what is kept beside it. */
  add (session: S, info: SessionInfo): void {
    this.entries.set(session.remotePeer, { session, ip: info.ip, source: info.source, via: info.via ?? 'direct', address: info.address })
  }

  /**
   * Forgets `session` and what was kept beside it, if it is the one registered for its peer (a
   * session replaced by another is not): says whether it was.
   */
  remove (session: S): boolean {
    if (this.entries.get(session.remotePeer)?.session !== session) return false
    this.entries.delete(session.remotePeer)
    return true
  }

  /** How we learned of the peer with a registered session. */
  sourceOf (peerId: string): PeerSource | undefined {
    return this.entries.get(peerId)?.source
  }

  /** The remote address of the registered session's connection (without `/p2p/<id>`), when known. */
  addressOf (peerId: string): string | undefined {
    return this.entries.get(peerId)?.address
  }

  /** The remote IP address of the peer with a registered session, when known. */
  ipOf (peerId: string): string | undefined {
    return this.entries.get(peerId)?.ip
  }

  /** Registered sessions by how we learned of their peer. */
  sourceCounts (): Record<PeerSource, number> {
    const out = emptySources()
    for (const e of this.entries.values()) out[e.source]++
    return out
  }

  /** Sessions by how we reach their peer. */
  viaCounts (): Record<PeerVia, number> {
    const out: Record<PeerVia, number> = { direct: 0, relayed: 0, 'hole-punched': 0 }
    for (const e of this.entries.values()) out[e.via ?? 'direct']++
    return out
  }

  /** How we reach `peerId`, if it has a session. */
  viaOf (peerId: string): PeerVia | undefined {
    const e = this.entries.get(peerId)
    return e === undefined ? undefined : e.via ?? 'direct'
  }

  /** What Admission needs to know of each session, in registry order. */
  facts (): SessionFacts[] {
    const out: SessionFacts[] = []
    for (const { session: s, ip } of this.entries.values()) {
      out.push({
        id: s.remotePeer,
        ip,
        connectedAt: s.connectedAt,
        lastBytesAt: Math.max(s.lastDownloadAt, s.lastUploadAt),
        interested: s.amInterested || s.peerInterested
      })
    }
    return out
  }
}
