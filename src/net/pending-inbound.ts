/**
 * A bound on the inbound connections one IP address may have in progress: accepted by TCP but
 * not yet through Noise and Yamux. libp2p bounds them in total (`maxIncomingPendingConnections`),
 * so without a bound per address a few sockets that never say a word hold every slot and lock
 * out everyone else until they time out — and are opened again at once.
 *
 * Loopback is not limited unless asked: every peer of a local test or benchmark is 127.0.0.1,
 * and a process on this machine is not one an address limit can stop anyway.
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { LogLimiter } from '../log-limiter.js'

export interface PendingInboundInit {
  /** inbound connections in progress at once from one IP address (default 8) */
  maxPerIp?: number
  /** apply the bound to 127.0.0.0/8 and ::1 too (default false) */
  limitLoopback?: boolean
  log?: (msg: string) => void
  now?: () => number
}

export class PendingInboundConfigError extends Error {
  override name = 'PendingInboundConfigError'
}

export class PendingInbound {
  readonly maxPerIp: number
  readonly limitLoopback: boolean
  private readonly pending = new Map<string, number>()
  private readonly log: LogLimiter | undefined

  constructor (init: PendingInboundInit = {}) {
    this.maxPerIp = init.maxPerIp ?? 8
    if (!Number.isInteger(this.maxPerIp) || this.maxPerIp < 1) throw new PendingInboundConfigError(`maxPerIp must be a whole number ≥ 1, got ${this.maxPerIp}`)
    this.limitLoopback = init.limitLoopback ?? false
    this.log = init.log != null ? new LogLimiter({ log: init.log, now: init.now }) : undefined
  }

  /** Counts a new connection in progress from `ip`; false (and not counted) when `ip` has its fill. */
  open (ip: string): boolean {
    if (!this.limitLoopback && isLoopback(ip)) return true
    const n = this.pending.get(ip) ?? 0
    if (n >= this.maxPerIp) {
      this.log?.log('pending-inbound', `refused an inbound connection from ${ip}: ${n} connections from it are still in their handshake (max ${this.maxPerIp})`)
      return false
    }
    this.pending.set(ip, n + 1)
    return true
  }

  /** A connection counted by `open` is through its handshake, or gone. */
  close (ip: string): void {
    const n = this.pending.get(ip)
    if (n == null) return
    // an address with nothing in progress is forgotten: the map holds only what is pending
    if (n <= 1) this.pending.delete(ip)
    else this.pending.set(ip, n - 1)
  }

  /** Connections in progress from `ip` (loopback: 0 unless limited). */
  count (ip: string): number {
    return this.pending.get(ip) ?? 0
  }

  /** Addresses with connections in progress. */
  get addresses (): number {
    return this.pending.size
  }

  /**
   * The libp2p connection gater hooks that apply this bound: counted when a socket is accepted,
   * released when the connection is upgraded or the socket closes, whichever comes first.
   */
  gater (): Pick<ConnectionGater, 'denyInboundConnection' | 'denyInboundUpgradedConnection'> {
    const counted = new WeakMap<MultiaddrConnection, () => void>()
    return {
      denyInboundConnection: (maConn: MultiaddrConnection): boolean => {
        const ip = ipOf(maConn.remoteAddr)
        if (ip == null) return false
        if (!this.open(ip)) return true
        let released = false
        const release = (): void => {
          if (released) return
          released = true
          counted.delete(maConn)
          maConn.removeEventListener('close', release)
          this.close(ip)
        }
        counted.set(maConn, release)
        maConn.addEventListener('close', release)
        return false
      },
      denyInboundUpgradedConnection: (_peer: PeerId, maConn: MultiaddrConnection): boolean => {
        counted.get(maConn)?.()
        return false
      }
    }
  }
}

/** The IP address of a multiaddr (`/ip4/…` or `/ip6/…`), if it has one. */
export function ipOf (ma: Multiaddr): string | undefined {
  for (const c of ma.getComponents()) {
    if (c.name === 'ip4' || c.name === 'ip6') return c.value
  }
  return undefined
}

export function isLoopback (ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.')
}
