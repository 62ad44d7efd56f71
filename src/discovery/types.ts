/**
 * A peer and the addresses it can be dialled on, as discovery sources (tracker, DHT, peer
 * exchange, peer cache) hand them to the swarm. Multiaddrs are without the `/p2p/<id>` suffix:
 * the id is `peerId`.
 */
export interface PeerAddress { peerId: string, multiaddrs: string[] }
