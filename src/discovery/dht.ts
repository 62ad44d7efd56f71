/**
 * Discovery through the LAN Kademlia DHT (kad-dht, see src/node.ts): announce ourselves as a
 * provider of a manifest CID, find other providers, and join the DHT through known addresses.
 * Every DHT call carries a signal: with an empty routing table kad-dht waits for a first peer
 * until its signal fires, so a call without one could wait forever.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { addressKey } from './dial-guard.js'
import type { PeerAddress } from './types.js'
import type { Libp2p, PeerId, PeerInfo } from '@libp2p/interface'
import type { KadDHT, SingleKadDHT } from '@libp2p/kad-dht'
import type { CID } from 'multiformats/cid'
import { splitPeerAddr } from '../net/addr.js'

export interface DhtDiscoveryInit {
  node: Libp2p<{ dht: KadDHT }>
  cid: CID
  /** ms between successful provides, default 5 min */
  reprovideInterval?: number
  /** ms one provide may take, default 30 s */
  provideTimeout?: number
  log?: (msg: string) => void
}

export const DEFAULT_REPROVIDE_INTERVAL = 5 * 60_000
export const DEFAULT_PROVIDE_TIMEOUT = 30_000
/** pause after a provide that reached nobody (peers known but unreachable, or it timed out) */
const RETRY_DELAY = 3_000
/** first look for routing-table growth after a provide (see scheduleNext) */
const FIRST_GROWTH_CHECK = 5_000
/** addresses kept per provider found (what one peer-exchange entry carries) */
const MAX_PROVIDER_ADDRS = 8
/** multiaddr protocol code of /p2p */

export class DhtDiscovery {
  private readonly node: Libp2p<{ dht: KadDHT }>
  private readonly cid: CID
  private readonly reprovideInterval: number
  private readonly provideTimeout: number
  private readonly log: (msg: string) => void
  private controller: AbortController | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private _provided = false
  private failing = false
  private lastProvideAt = 0
  private sizeAtProvide = 0
  private growthCheckDelay = FIRST_GROWTH_CHECK

  constructor (init: DhtDiscoveryInit) {
    this.node = init.node
    this.cid = init.cid
    this.reprovideInterval = Math.max(1_000, init.reprovideInterval ?? DEFAULT_REPROVIDE_INTERVAL)
    this.provideTimeout = Math.max(100, init.provideTimeout ?? DEFAULT_PROVIDE_TIMEOUT)
    this.log = init.log ?? (() => {})
  }

  /**
   * Provide the CID now and every reprovideInterval (earlier while the routing table grows,
   * see scheduleNext). With an empty routing table a provide waits inside kad-dht for the
   * first peer (so it goes out as soon as one is added), up to provideTimeout, and is then
   * renewed; a provide that reached nobody is retried after a few seconds.
   */
  start (): void {
    if (this.controller != null) return
    this.controller = new AbortController()
    this.growthCheckDelay = FIRST_GROWTH_CHECK
    this.schedule(0)
  }

  /** Abort the provide in flight, clear timers; the local provider record is withdrawn. */
  stop (): void {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this._provided = false
    // without this, kad-dht itself would re-provide the CID a day later and answer for it meanwhile
    try {
      this.node.services.dht.cancelReprovide(this.cid).catch(() => {})
    } catch {
      // a stopped node may refuse synchronously: nothing left to withdraw then
    }
  }

  get routingTableSize (): number {
    // kad-dht's class has a routing table; the KadDHT interface only promises it on SingleKadDHT
    // and a program's node used without the DHT (`dht: false`) may have no DHT at all
    const dht = this.node.services.dht as (KadDHT & Partial<Pick<SingleKadDHT, 'routingTable'>>) | undefined
    return dht?.routingTable?.size ?? 0
  }

  /** The last provide reached at least one peer. */
  get provided (): boolean {
    return this._provided
  }

  /**
   * Providers of the CID with their addresses (without `/p2p`), as the DHT answers (kad-dht
   * leaves out our own record; should an answer name us anyway, the peer book refuses our id).
   * Returns what was found when the signal fires (so [] on a timeout with no answer); never throws.
   */
  async findProviders (options: { signal: AbortSignal, limit?: number }): Promise<PeerAddress[]> {
    const limit = options.limit ?? Infinity
    const found = new Map<string, Set<string>>()
    if (limit <= 0 || options.signal.aborted) return []
    try {
      for await (const event of this.node.services.dht.findProviders(this.cid, { signal: options.signal })) {
        if (event.name !== 'PROVIDER') continue
        for (const peer of event.providers) {
          const addrs = found.get(peer.id.toString()) ?? new Set<string>()
          // a remote answer can name any address: keep a few that can be dialled at all (the
          // swarm's dial guard then decides when, and for how many peer ids)
          for (const a of stripAddrs(peer)) if (addrs.size < MAX_PROVIDER_ADDRS && addressKey(a) != null) addrs.add(a)
          found.set(peer.id.toString(), addrs)
        }
        // leaving the loop ends the query early
        if (found.size >= limit) break
      }
    } catch (err) {
      if (!options.signal.aborted) this.log(`dht: findProviders failed: ${describe(err)}`)
    }
    const out: PeerAddress[] = []
    for (const [peerId, addrs] of found) {
      // a provider record without addresses gives the swarm nothing to dial
      if (addrs.size > 0) out.push({ peerId, multiaddrs: [...addrs] })
      if (out.length >= limit) break
    }
    return out
  }

  /**
   * Dial each address (it must end in `/p2p/<id>`); return the peers that connected, their
   * addresses without `/p2p`. Identify then tells kad-dht they speak the DHT protocol and they
   * join the routing table (after a ping: a few ms on a LAN). Never throws.
   */
  async bootstrap (addrs: string[], options: { signal: AbortSignal }): Promise<PeerAddress[]> {
    const self = this.node.peerId
    const targets: Array<{ id: PeerId, full: string, bare: string }> = []
    for (const text of addrs) {
      try {
        const ma = multiaddr(text)
        const { bare, peerId } = splitPeerAddr(ma)
        if (peerId == null) {
          this.log(`dht: bootstrap address without /p2p/<id> ignored: ${text}`)
          continue
        }
        const id = peerIdFromString(peerId)
        // our own address among the bootstrap ones (a share link we printed): not dialled
        if (id.equals(self)) continue
        targets.push({ id, full: ma.toString(), bare: bare.toString() })
      } catch (err) {
        this.log(`dht: bad bootstrap address ${text}: ${describe(err)}`)
      }
    }
    const results = await Promise.allSettled(targets.map(async t => {
      // a signal per dial: libp2p hangs several listeners on it, and many dials sharing the
      // caller's one trip Node's MaxListenersExceededWarning
      await this.node.dial(multiaddr(t.full), { signal: AbortSignal.any([options.signal]) })
      return t
    }))
    const connected = new Map<string, Set<string>>()
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        const key = r.value.id.toString()
        const set = connected.get(key) ?? new Set<string>()
        // `/p2p/<id>` alone leaves no address to pass on (its bare form is '/')
        if (r.value.bare !== '' && r.value.bare !== '/') set.add(r.value.bare)
        connected.set(key, set)
      } else {
        this.log(`dht: bootstrap dial ${targets[i]?.full ?? '?'} failed: ${describe(r.reason)}`)
      }
    })
    return [...connected].map(([peerId, set]) => ({ peerId, multiaddrs: [...set] }))
  }

  private schedule (ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.tick() }, ms)
    // discovery alone must not keep a process alive once the node is closed
    this.timer.unref()
  }

  private async tick (): Promise<void> {
    this.timer = undefined
    const controller = this.controller
    if (controller == null) return
    if (this._provided && Date.now() < this.lastProvideAt + this.reprovideInterval && this.routingTableSize <= this.sizeAtProvide) {
      this.scheduleNext()
      return
    }
    const reached = await this.provideOnce(controller.signal)
    if (controller.signal.aborted || this.controller !== controller) return
    const ok = reached > 0
    if (ok && this.failing) this.log(`dht: provide reached ${reached} peer(s)`)
    this._provided = ok
    this.failing = !ok
    if (ok) {
      this.lastProvideAt = Date.now()
      this.sizeAtProvide = this.routingTableSize
      this.scheduleNext()
    } else if (this.routingTableSize === 0) {
      // kad-dht holds a provide until the first peer arrives: start the next wait at once
      // (bounded to one attempt per RETRY_DELAY should provideTimeout be tiny)
      this.schedule(Math.max(0, RETRY_DELAY - this.provideTimeout))
    } else {
      this.schedule(RETRY_DELAY)
    }
  }

  /**
   * Next regular provide, or an earlier look at the routing table: a provide made while the
   * table was sparse (just after joining) may have stored the record on peers that another
   * node's lookup never visits, so while the table grows we provide again, checking after 5 s,
   * 10 s, 20 s … (at most log2(reprovideInterval / 5 s) extra provides).
   */
  private scheduleNext (): void {
    const due = Math.max(0, this.lastProvideAt + this.reprovideInterval - Date.now())
    if (this.growthCheckDelay < due) {
      this.schedule(this.growthCheckDelay)
      this.growthCheckDelay *= 2
    } else {
      this.schedule(due)
    }
  }

  /**
   * One provide: how many peers took our provider record (ADD_PROVIDER has no reply: "took"
   * means the message was written to a DHT stream they opened for us).
   */
  private async provideOnce (stop: AbortSignal): Promise<number> {
    const signal = AbortSignal.any([stop, AbortSignal.timeout(this.provideTimeout)])
    const emptyAtStart = this.routingTableSize === 0
    let accepted = 0
    try {
      for await (const event of this.node.services.dht.provide(this.cid, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') accepted++
      }
    } catch (err) {
      if (stop.aborted) return 0
      if (!this.failing) {
        this.log(signal.aborted
          ? `dht: provide timed out after ${this.provideTimeout} ms${emptyAtStart && this.routingTableSize === 0 ? ' (no DHT peers yet)' : ''}`
          : `dht: provide failed: ${describe(err)}`)
      }
      return 0
    }
    if (accepted === 0 && !this.failing) this.log('dht: provide reached no peer')
    return accepted
  }
}

/** addresses without the trailing `/p2p/<id>` (a relay's own /p2p inside stays) */
function stripAddrs (peer: PeerInfo): string[] {
  const out: string[] = []
  for (const ma of peer.multiaddrs) {
    const bare = splitPeerAddr(ma).bare.toString()
    if (bare !== '' && bare !== '/') out.push(bare)
  }
  return out
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
