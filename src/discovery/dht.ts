/**
 * Discovery through the Kademlia DHTs (kad-dht, see src/node.ts): the LAN one (`services.dht`),
 * the internet one (`services.wanDHT`), or both side by side (`auto`, as Helia and kubo run a LAN
 * and a WAN DHT). Announce ourselves as a provider of a manifest CID on each, find other
 * providers in each (results merged), and join them through known addresses. Every DHT call
 * carries a signal: with an empty routing table kad-dht waits for a first peer until its signal
 * fires, so a call without one could wait forever.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { addressKey } from './dial-guard.js'
import type { PeerAddress } from './types.js'
import type { Libp2p, PeerId, PeerInfo } from '@libp2p/interface'
import type { KadDHT, SingleKadDHT } from '@libp2p/kad-dht'
import type { CID } from 'multiformats/cid'
import { splitPeerAddr } from '../net/addr.js'
import type { DhtMode } from '../node.js'

/** The node's DHT services, each present when it runs that DHT (see BitswarmServices). */
export type DhtServices = { dht?: KadDHT, wanDHT?: KadDHT }

export interface DhtDiscoveryInit {
  node: Libp2p<DhtServices>
  cid: CID
  /**
   * which of the node's DHTs to use (default `auto`: each one it runs, `services.dht` (LAN) and
   * `services.wanDHT` (internet); `lan` or `wan` only that one, if it runs; `off` none)
   */
  mode?: DhtMode
  /** ms between successful provides, default 5 min */
  reprovideInterval?: number
  /** ms one provide may take, default 30 s */
  provideTimeout?: number
  log?: (msg: string) => void
}

/** One DHT's state, for `stats`. */
export interface DhtTableStatus {
  /** contacts in its routing table */
  routingTable: number
  /** the last provide reached at least one peer */
  provided: boolean
  /** server: it answers queries and other peers keep it as a contact; client: it only asks */
  mode: 'client' | 'server'
}

/** The DHTs in use by name: `lan` (`services.dht`) and `wan` (`services.wanDHT`), each if used. */
export interface DhtTablesStatus {
  lan?: DhtTableStatus
  wan?: DhtTableStatus
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
  private readonly node: Libp2p<DhtServices>
  private readonly cid: CID
  private readonly log: (msg: string) => void
  /** the DHTs in use: the LAN one first */
  private readonly tables: DhtTable[]

  constructor (init: DhtDiscoveryInit) {
    this.node = init.node
    this.cid = init.cid
    this.log = init.log ?? (() => {})
    const mode = init.mode ?? 'auto'
    const services = init.node.services
    const chosen: Array<{ name: DhtName, dht: KadDHT }> = []
    if ((mode === 'auto' || mode === 'lan') && services.dht != null) chosen.push({ name: 'lan', dht: services.dht })
    if ((mode === 'auto' || mode === 'wan') && services.wanDHT != null) chosen.push({ name: 'wan', dht: services.wanDHT })
    this.tables = chosen.map(({ name, dht }) => new DhtTable({
      name,
      dht,
      cid: init.cid,
      reprovideInterval: Math.max(1_000, init.reprovideInterval ?? DEFAULT_REPROVIDE_INTERVAL),
      provideTimeout: Math.max(100, init.provideTimeout ?? DEFAULT_PROVIDE_TIMEOUT),
      log: this.log,
      // beside a LAN DHT, an internet one with nobody in it is the normal state of a LAN-only
      // swarm: its provides time out quietly
      quietWhileEmpty: name === 'wan' && chosen.length > 1
    }))
  }

  /**
   * Provide the CID on each DHT now and every reprovideInterval (earlier while its routing table
   * grows, see DhtTable.scheduleNext). With an empty routing table a provide waits inside kad-dht
   * for the first peer (so it goes out as soon as one is added), up to provideTimeout, and is
   * then renewed; a provide that reached nobody is retried after a few seconds. Each DHT keeps
   * its own pace: an empty internet table does not hold up the LAN's provides.
   */
  start (): void {
    for (const t of this.tables) t.start()
  }

  /** Abort the provides in flight, clear timers; the local provider records are withdrawn. */
  stop (): void {
    for (const t of this.tables) t.stop()
  }

  /** Contacts in the routing tables of the DHTs in use, all together. */
  get routingTableSize (): number {
    return this.tables.reduce((n, t) => n + t.routingTableSize, 0)
  }

  /** The last provide on at least one of the DHTs reached at least one peer. */
  get provided (): boolean {
    return this.tables.some(t => t.provided)
  }

  /** Each DHT in use: its routing table, provide state and mode. */
  tablesStatus (): DhtTablesStatus {
    const out: DhtTablesStatus = {}
    for (const t of this.tables) out[t.name] = t.status()
    return out
  }

  /**
   * Providers of the CID with their addresses (without `/p2p`), as the DHTs answer, merged,
   * without us (kad-dht answers from its local store first, where our own record is, and gives
   * it with our addresses once libp2p has written them to our peer-store entry, about a second
   * after start). The DHTs with contacts are asked at once. One with an empty routing table would
   * only wait (kad-dht holds a query until a first peer arrives): it is asked only when every
   * table is empty, and left as soon as another DHT has answered. Returns what was found when
   * the signal fires (so [] on a timeout with no answer); never throws.
   */
  async findProviders (options: { signal: AbortSignal, limit?: number }): Promise<PeerAddress[]> {
    const limit = options.limit ?? Infinity
    const found = new Map<string, Set<string>>()
    if (limit <= 0 || options.signal.aborted || this.tables.length === 0) return []
    const withContacts = this.tables.filter(t => t.routingTableSize > 0)
    const asked = withContacts.length > 0 ? withContacts : this.tables
    const stops = asked.map(() => new AbortController())
    const self = this.node.peerId.toString()
    await Promise.all(asked.map(async (table, i) => {
      const signal = AbortSignal.any([options.signal, stops[i]!.signal])
      try {
        for await (const event of table.dht.findProviders(this.cid, { signal })) {
          if (event.name !== 'PROVIDER') continue
          for (const peer of event.providers) {
            if (peer.id.toString() === self) continue
            const addrs = found.get(peer.id.toString()) ?? new Set<string>()
            // a remote answer can name any address: keep a few that can be dialled at all (the
            // swarm's dial guard then decides when, and for how many peer ids)
            for (const a of stripAddrs(peer)) if (addrs.size < MAX_PROVIDER_ADDRS && addressKey(a) != null) addrs.add(a)
            found.set(peer.id.toString(), addrs)
          }
          // enough: every query ends (leaving the loop ends this one)
          if (found.size >= limit) {
            for (const s of stops) s.abort()
            break
          }
        }
      } catch (err) {
        if (!signal.aborted) this.log(`${table.label}: findProviders failed: ${describe(err)}`)
      }
      // this DHT is done: one still waiting for its first contact has nothing to add
      asked.forEach((other, j) => { if (j !== i && other.routingTableSize === 0) stops[j]!.abort() })
    }))
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
  async bootstrap (addrs: string[], options: { signal: AbortSignal, logFailures?: boolean }): Promise<PeerAddress[]> {
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
      } else if (options.logFailures !== false) {
        this.log(`dht: bootstrap dial ${targets[i]?.full ?? '?'} failed: ${describe(r.reason)}`)
      }
    })
    return [...connected].map(([peerId, set]) => ({ peerId, multiaddrs: [...set] }))
  }
}

type DhtName = 'lan' | 'wan'

interface DhtTableInit {
  name: DhtName
  dht: KadDHT
  cid: CID
  reprovideInterval: number
  provideTimeout: number
  log: (msg: string) => void
  /** no log line for a provide that timed out with nobody in the table */
  quietWhileEmpty: boolean
}

/** One DHT's provides: its own timers, retries and growth checks. */
class DhtTable {
  readonly name: DhtName
  readonly dht: KadDHT
  /** how log lines name it */
  readonly label: string
  private readonly cid: CID
  private readonly reprovideInterval: number
  private readonly provideTimeout: number
  private readonly log: (msg: string) => void
  private readonly quietWhileEmpty: boolean
  private controller: AbortController | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private _provided = false
  private failing = false
  private lastProvideAt = 0
  private sizeAtProvide = 0
  private growthCheckDelay = FIRST_GROWTH_CHECK

  constructor (init: DhtTableInit) {
    this.name = init.name
    this.dht = init.dht
    this.label = init.name === 'lan' ? 'dht' : 'wan dht'
    this.cid = init.cid
    this.reprovideInterval = init.reprovideInterval
    this.provideTimeout = init.provideTimeout
    this.log = init.log
    this.quietWhileEmpty = init.quietWhileEmpty
  }

  start (): void {
    if (this.controller != null) return
    this.controller = new AbortController()
    this.growthCheckDelay = FIRST_GROWTH_CHECK
    this.schedule(0)
  }

  stop (): void {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this._provided = false
    // without this, kad-dht itself would re-provide the CID a day later and answer for it meanwhile
    try {
      this.dht.cancelReprovide(this.cid).catch(() => {})
    } catch {
      // a stopped node may refuse synchronously: nothing left to withdraw then
    }
  }

  get routingTableSize (): number {
    // kad-dht's class has a routing table; the KadDHT interface only promises it on SingleKadDHT
    const dht = this.dht as KadDHT & Partial<Pick<SingleKadDHT, 'routingTable'>>
    return dht.routingTable?.size ?? 0
  }

  get provided (): boolean {
    return this._provided
  }

  status (): DhtTableStatus {
    return { routingTable: this.routingTableSize, provided: this._provided, mode: this.dht.getMode() }
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
    if (ok && this.failing) this.log(`${this.label}: provide reached ${reached} peer(s)`)
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
      for await (const event of this.dht.provide(this.cid, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') accepted++
      }
    } catch (err) {
      if (stop.aborted) return 0
      const empty = emptyAtStart && this.routingTableSize === 0
      if (!this.failing && !(signal.aborted && empty && this.quietWhileEmpty)) {
        this.log(signal.aborted
          ? `${this.label}: provide timed out after ${this.provideTimeout} ms${empty ? ' (no DHT peers yet)' : ''}`
          : `${this.label}: provide failed: ${describe(err)}`)
      }
      return 0
    }
    if (accepted === 0 && !this.failing) this.log(`${this.label}: provide reached no peer`)
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
