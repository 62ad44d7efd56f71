/**
 * Peer addresses at the edge: one home for the `/p2p/<peer id>` suffix. The tracker stores, peer
 * exchange passes and the peer cache keeps addresses without it (the peer id travels beside
 * them); dialing and `--bootstrap` want it on. Only the last `/p2p` component is the peer's own:
 * in a circuit address `/…/p2p/<relay>/p2p-circuit/p2p/<peer>` the relay's stays.
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/** The multicodec of `/p2p/<peer id>` (multiformats' table). */
export const P2P_CODE = 421

/** `addr` split at its trailing `/p2p/<id>`: the address without it, and the id if it had one. */
export function splitPeerAddr (addr: Multiaddr | string): { bare: Multiaddr, peerId: string | undefined } {
  const ma = typeof addr === 'string' ? multiaddr(addr) : addr
  const components = ma.getComponents()
  const last = components[components.length - 1]
  if (last?.code !== P2P_CODE) return { bare: ma, peerId: undefined }
  return { bare: multiaddr(components.slice(0, -1)), peerId: last.value }
}

/** `addr` without a trailing `/p2p/<id>` (text in, text out; the input if it does not parse). */
export function withoutPeerId (addr: string): string {
  try {
    return splitPeerAddr(addr).bare.toString()
  } catch {
    return addr
  }
}

/** `addr` (without a peer id) with `/p2p/<peerId>` appended, for dialing and for people. */
export function withPeerId (addr: string, peerId: string): string {
  return `${addr}/p2p/${peerId}`
}
