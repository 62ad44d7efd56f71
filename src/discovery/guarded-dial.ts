/**
 * Dialling a peer some source told us of (tracker, peer exchange, DHT), through the dial guard:
 * only the addresses the guard admits are dialled — given explicitly, never merged into the
 * peer store, where libp2p would dial them again on its own — and the outcome is reported back.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { DialGuard } from './dial-guard.js'
import type { PeerAddress } from './types.js'
import { withPeerId } from '../net/addr.js'

/** The guard admitted none of the peer's addresses. */
export class DialRefusedError extends Error {
  override name = 'DialRefusedError'
}

/** No connection within the time given (a tarpit takes the TCP connection and never speaks). */
export class DialTimeoutError extends Error {
  override name = 'DialTimeoutError'
}

/**
 * An open connection to `peer`: the one we have, or a new one to an admitted address. `signal`
 * is the caller's: when it fires (we gave up, not the peer) the addresses are not blamed;
 * a dial that fails or outlasts `timeout` ms is.
 */
export async function dialGuarded (node: Libp2p, guard: DialGuard, peer: PeerAddress, options: { signal?: AbortSignal, timeout: number }): Promise<Connection> {
  const id = peerIdFromString(peer.peerId)
  const open = node.getConnections(id).find(c => c.status === 'open' && c.limits == null)
  if (open != null) return open
  const { admitted, refused } = guard.admit(peer.peerId, peer.multiaddrs)
  if (admitted.length === 0) {
    throw new DialRefusedError(`not dialling ${peer.peerId}: ${refused.map(r => `${r.addr} (${r.reason})`).join(', ') || 'no address'}`)
  }
  const deadline = AbortSignal.timeout(options.timeout)
  const signal = AbortSignal.any([deadline, ...(options.signal != null ? [options.signal] : [])])
  try {
    const conn = await node.dial(admitted.map(a => multiaddr(withPeerId(a, peer.peerId))), { signal })
    guard.succeeded(conn.remoteAddr.toString())
    return conn
  } catch (err) {
    if (options.signal?.aborted === true) throw err
    guard.failed(admitted, peer.peerId)
    if (deadline.aborted) throw new DialTimeoutError(`no connection to ${peer.peerId} within ${options.timeout} ms`, { cause: err })
    throw err
  }
}
