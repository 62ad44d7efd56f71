/**
 * Whether others can reach us, from the addresses we advertise:
 *  - 'public': an address on a public IP (one we listen on, or one we announce: a forwarded port,
 *    a UPnP mapping), so anyone may dial us;
 *  - 'relayed': no such address, but a reservation on a relay (a `/p2p-circuit` address): others
 *    reach us through it;
 *  - 'private': neither. We dial out and trade with whoever we reach; peers behind other NATs
 *    cannot reach us, nor we them (a relay, `--relay`, or a forwarded port, `--announce`, fixes it).
 * What counts as a public IP is the caller's classifier (tests declare a namespaced stand-in
 * internet of private addresses public).
 */
import type { Multiaddr } from '@multiformats/multiaddr'

export type Reachability = 'public' | 'relayed' | 'private' | 'unknown'

/** knowing peers and reaching none for this long, a peer says so (unreachableMessage) */
export const UNREACHABLE_WARN_MS = 15_000

/**
 * The line a peer logs when it knows peers and can reach none: what two peers behind NATs that
 * keep them apart see when no relay carries data between them.
 */
export function unreachableMessage (known: number, relayOnly = 0): string {
  return `no peer reachable: ${known} known peer${known === 1 ? '' : 's'} could not be reached` +
    (relayOnly > 0 ? ` (${relayOnly} only through a relay that carries no data)` : '') +
    '. If they and we are behind NATs, one side needs a relay that carries data (`bitswarm relay` on a reachable host, then --relay on the peer behind the NAT) or a forwarded port (--announce)'
}

export function reachabilityOf (addrs: readonly Multiaddr[], isPublic: (ma: Multiaddr) => boolean): Reachability {
  let relayed = false
  for (const ma of addrs) {
    if (ma.getComponents().some(c => c.name === 'p2p-circuit')) relayed = true
    else if (isPublic(ma)) return 'public'
  }
  return relayed ? 'relayed' : 'private'
}
