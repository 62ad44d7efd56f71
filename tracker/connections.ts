/**
 * Bounds on the tracker's open connections, so that one host holding sockets open (slowloris)
 * cannot use up the process's file descriptors and lock everyone else out: a cap per client IP
 * (an IPv6 /64), and a total below the descriptor limit. Slow requests are cut by node:http's
 * own timeouts (see server.ts).
 */
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { hostOf, normalizeIp } from './addresses.js'

export const DEFAULT_MAX_CONNECTIONS_PER_IP = 128
/** descriptors kept for everything but client sockets (listener, stdio, libuv, files) */
const RESERVED_DESCRIPTORS = 64
const FALLBACK_MAX_CONNECTIONS = 4096
const MAX_DEFAULT_CONNECTIONS = 16_384

/** The soft limit on open files (Linux, from /proc: Node has already raised it to the hard one). */
export function descriptorLimit (read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(read())
    return m == null ? undefined : Number(m[1])
  } catch {
    return undefined // not Linux: no /proc
  }
}

/** Total open connections by default: what the descriptor limit leaves, within sane bounds. */
export function defaultMaxConnections (limit: number | undefined): number {
  if (limit === undefined) return FALLBACK_MAX_CONNECTIONS
  return Math.max(16, Math.min(MAX_DEFAULT_CONNECTIONS, limit - RESERVED_DESCRIPTORS))
}

/**
 * Counts open connections per client host and closes one past `maxPerIp` at once. Sockets from
 * `exempt` IPs (trusted reverse proxies, which carry many clients) are not counted.
 */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>()
  /** connections closed over the per-IP cap since the last `takeRefused` */
  private refused = 0
  /** connections node closed over the server's maxConnections since then */
  private dropped = 0

  constructor (readonly maxPerIp: number, private readonly exempt: ReadonlySet<string> = new Set()) {}

  attach (server: Server): void {
    server.on('connection', (socket: Socket) => { this.admit(socket) })
    server.on('drop', () => { this.dropped++ })
  }

  /** Connections refused since the last call (for a log line): over the per-IP cap, over the total. */
  takeRefused (): { perIp: number, total: number } {
    const n = { perIp: this.refused, total: this.dropped }
    this.refused = 0
    this.dropped = 0
    return n
  }

  /** hosts with open connections (bounded by the open connections themselves) */
  get hosts (): number {
    return this.open.size
  }

  private admit (socket: Socket): void {
    const ip = normalizeIp(socket.remoteAddress)
    if (this.exempt.has(ip)) return
    const host = hostOf(ip)
    const n = this.open.get(host) ?? 0
    if (n >= this.maxPerIp) {
      this.refused++
      socket.destroy()
      return
    }
    this.open.set(host, n + 1)
    socket.once('close', () => {
      const left = (this.open.get(host) ?? 1) - 1
      if (left > 0) this.open.set(host, left)
      else this.open.delete(host)
    })
  }
}
