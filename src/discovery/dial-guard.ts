/**
 * The dial guard: which addresses another peer told us of we may dial now. Trackers, peer
 * exchange and DHT answers carry addresses anyone can make up, and identities are free, so an
 * attacker can name a victim's ip:port under many fresh peer ids and have us connect to it
 * once per id. The guard keeps, per address (ip:port), the peer ids dialled there and the
 * failures in a row, and admits an address only
 * - if at most `maxIdsPerAddress` distinct peer ids were dialled there within `idWindow`, and
 * - if its backoff after failed dials has run out (doubling from `baseBackoff` to `maxBackoff`).
 * It also refuses addresses nobody can be reached at (port 0, unspecified or multicast IPs).
 *
 * Pure: no timers, no I/O; the clock is injected. Memory is bounded (`maxAddresses` entries,
 * least recently used evicted first).
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { backoffDelay } from '../backoff.js'

export interface DialGuardInit {
  /** distinct peer ids dialled at one address within `idWindow` (default 2: a restart with a new identity) */
  maxIdsPerAddress?: number
  /** ms a peer id counts against its address (default 10 min) */
  idWindow?: number
  /** ms an address waits after its first failed dial (default 2 s), doubling per failure in a row … */
  baseBackoff?: number
  /** … up to this (default 5 min) */
  maxBackoff?: number
  /** addresses remembered (default 4096) */
  maxAddresses?: number
  now?: () => number
}

/** Why an address was not admitted. */
export type Refusal = 'undialable' | 'too-many-ids' | 'backoff'

interface AddressState {
  /** peer id → when it was last dialled here */
  ids: Map<string, number>
  failures: number
  retryAt: number
}

const TCP_HOSTS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6'])

export class DialGuard {
  private readonly maxIds: number
  private readonly idWindow: number
  private readonly baseBackoff: number
  private readonly maxBackoff: number
  private readonly maxAddresses: number
  private readonly now: () => number
  /** Map order is least recently used first */
  private readonly addresses = new Map<string, AddressState>()

  constructor (init: DialGuardInit = {}) {
    this.maxIds = init.maxIdsPerAddress ?? 2
    this.idWindow = init.idWindow ?? 10 * 60_000
    this.baseBackoff = init.baseBackoff ?? 2_000
    this.maxBackoff = Math.max(init.maxBackoff ?? 5 * 60_000, this.baseBackoff)
    this.maxAddresses = init.maxAddresses ?? 4096
    this.now = init.now ?? Date.now
    if (!Number.isInteger(this.maxIds) || this.maxIds < 1) throw new RangeError(`maxIdsPerAddress must be a positive integer, got ${this.maxIds}`)
    if (!Number.isInteger(this.maxAddresses) || this.maxAddresses < 1) throw new RangeError(`maxAddresses must be a positive integer, got ${this.maxAddresses}`)
  }

  /**
   * The addresses of `addrs` that `peerId` may be dialled at now, each recorded as dialled by
   * it (so call this only right before dialling them); `refused` says why the others are not.
   */
  admit (peerId: string, addrs: string[]): { admitted: string[], refused: Array<{ addr: string, reason: Refusal }> } {
    const now = this.now()
    const admitted: string[] = []
    const refused: Array<{ addr: string, reason: Refusal }> = []
    for (const addr of addrs) {
      const key = guardKey(addr, peerId)
      if (key == null) { refused.push({ addr, reason: 'undialable' }); continue }
      const state = this.touch(key)
      for (const [id, at] of state.ids) if (now - at > this.idWindow) state.ids.delete(id)
      if (!state.ids.has(peerId) && state.ids.size >= this.maxIds) { refused.push({ addr, reason: 'too-many-ids' }); continue }
      if (now < state.retryAt) { refused.push({ addr, reason: 'backoff' }); continue }
      state.ids.set(peerId, now)
      admitted.push(addr)
    }
    return { admitted, refused }
  }

  /** A dial to these addresses failed: each backs off, longer per failure in a row. */
  failed (addrs: string[], peerId?: string): void {
    const now = this.now()
    for (const addr of addrs) {
      const key = guardKey(addr, peerId)
      if (key == null) continue
      const state = this.touch(key)
      state.failures++
      state.retryAt = now + backoffDelay(state.failures, this.baseBackoff, this.maxBackoff)
    }
  }

  /** A dial to this address connected: its backoff is over. */
  succeeded (addr: string): void {
    const key = addressKey(addr)
    if (key == null) return
    const state = this.addresses.get(key)
    if (state == null) return
    state.failures = 0
    state.retryAt = 0
  }

  /** Addresses remembered now. */
  get size (): number {
    return this.addresses.size
  }

  private touch (key: string): AddressState {
    let state = this.addresses.get(key)
    if (state != null) {
      this.addresses.delete(key)
    } else {
      state = { ids: new Map(), failures: 0, retryAt: 0 }
      // the least recently used address goes; forgetting one only lets it be tried again
      if (this.addresses.size >= this.maxAddresses) {
        const oldest = this.addresses.keys().next()
        if (oldest.done !== true) this.addresses.delete(oldest.value)
      }
    }
    this.addresses.set(key, state)
    return state
  }
}

/**
 * The guard's key of `addr` dialled as `peerId`: its addressKey, and for a relay route the peer
 * too. A relay forwards only to peers holding a reservation on it, so naming a relay cannot aim
 * us at a bystander; many peers behind one relay are many addresses, not one address under many
 * ids (which the ip:port rule would refuse after two).
 */
function guardKey (addr: string, peerId: string | undefined): string | undefined {
  const key = addressKey(addr)
  if (key === undefined || !key.startsWith('/') || peerId === undefined || key.endsWith(`/p2p/${peerId}`)) return key
  return `${key}/p2p/${peerId}`
}

/**
 * What a dial reaches: `host:port` for a TCP address (ip4, ip6, dns*; trailing /p2p ignored), the
 * whole address for a relay route (`…/p2p-circuit`, with the peer behind it when named); undefined
 * for one nobody can be reached at (port 0, 0.0.0.0, ::, multicast or broadcast) or that does not
 * parse.
 */
export function addressKey (addr: string | Multiaddr): string | undefined {
  let components
  try {
    components = (typeof addr === 'string' ? multiaddr(addr) : addr).getComponents()
  } catch {
    return undefined
  }
  // a relay route reaches whoever is behind the relay: the whole route is the address
  if (components.some(c => c.name === 'p2p-circuit')) return components.map(c => `/${c.name}${c.value != null ? `/${c.value}` : ''}`).join('')
  while (components.length > 0 && components[components.length - 1].name === 'p2p') components = components.slice(0, -1)
  if (components.length === 0) return undefined
  const [host, transport] = components
  if (TCP_HOSTS.has(host.name) && transport?.name === 'tcp') {
    const port = Number(transport.value)
    if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined
    const value = (host.value ?? '').toLowerCase()
    if (host.name === 'ip4' && !unicastIp4(value)) return undefined
    if (host.name === 'ip6' && !unicastIp6(value)) return undefined
    if (value === '') return undefined
    return `${host.name === 'ip6' ? `[${value}]` : value}:${port}`
  }
  // other transports (udp, ws, unix …): our nodes speak TCP only; nothing to dial
  return undefined
}

function unicastIp4 (ip: string): boolean {
  const first = Number(ip.split('.')[0])
  return ip !== '0.0.0.0' && ip !== '255.255.255.255' && !(first >= 224 && first <= 239)
}

function unicastIp6 (ip: string): boolean {
  return ip !== '::' && !ip.startsWith('ff')
}
