/**
 * A peer and the addresses it can be dialled on, as discovery sources (tracker, DHT, peer
 * exchange, peer cache) hand them to the swarm. Multiaddrs are without the `/p2p/<id>` suffix:
 * the id is `peerId`.
 */
export interface PeerAddress { peerId: string, multiaddrs: string[] }

/** How we came to know a peer; `incoming` peers dialled us. */
export type PeerSource = 'tracker' | 'dht' | 'pex' | 'bootstrap' | 'cache' | 'incoming'
export const PEER_SOURCES: readonly PeerSource[] = ['tracker', 'dht', 'pex', 'bootstrap', 'cache', 'incoming']

/** A count of zero for every source. */
export function emptySources (): Record<PeerSource, number> {
  return Object.fromEntries(PEER_SOURCES.map(k => [k, 0])) as Record<PeerSource, number>
}

/**
 * Addresses one tracker announce may carry (its signed record): the tracker refuses a record
 * with more, and the client sends no more. One fact for both ends (tracker/record.ts).
 */
export const MAX_ANNOUNCE_ADDRS = 16
