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

/**
 * The rule behind unreachableMessage, for the manifest race and the swarm alike: peers whose dial
 * failed (and whether only a relay that carries no data reached them), peers reached; once some
 * failed and none was reached for UNREACHABLE_WARN_MS, check() returns the line to log, once,
 * until a peer is reached again. Pure: the caller passes the clock; bounded to 1,000 peers.
 */
export class UnreachableWatch {
  private readonly failed = new Map<string, boolean>()
  private since: number | undefined
  private said = false

  /** A dial of `peerId` failed; `relayOnly`: only a relay that carries no data reached it. */
  dialFailed (peerId: string, relayOnly = false): void {
    if (this.failed.has(peerId) ? relayOnly : this.failed.size < 1000) this.failed.set(peerId, relayOnly)
  }

  /** Starts the clock now rather than at the first check that sees a failure. */
  start (now: number): void {
    this.since ??= now
  }

  /** We reached `peerId`. */
  reached (peerId: string): void {
    this.failed.delete(peerId)
  }

  /**
   * The line to log now, if any. `connected`: sessions open now (any resets the rule: a later
   * cut-off is said again).
   */
  check (now: number, connected: number): string | undefined {
    if (connected > 0) { this.since = undefined; this.said = false; return undefined }
    if (this.failed.size === 0 || this.said) return undefined
    this.since ??= now
    if (now - this.since < UNREACHABLE_WARN_MS) return undefined
    this.said = true
    let relayOnly = 0
    for (const r of this.failed.values()) if (r) relayOnly++
    return unreachableMessage(this.failed.size, relayOnly)
  }
}
