/**
 * The WAN DHT's mode: a client (asks, is never asked, stays out of other peers' routing tables)
 * while other hosts cannot reach us, a server once they can. kad-dht can switch on its own, but
 * from its own notion of a public address, which cannot be changed; WanDhtMode decides from ours
 * (the injectable classifier of src/net/address-class.ts) and from a reachability signal:
 *
 * - `setReachable(false)`: client, whatever our addresses (e.g. AutoNAT says nobody gets in);
 * - `setReachable(true)`: server, whatever our addresses (e.g. AutoNAT confirmed one of them);
 * - `setReachable(undefined)` (the start): server while one of our own advertised addresses
 *   (listen, announced or confirmed: `node.getMultiaddrs()`) is public and not a relay address.
 *
 * It looks again whenever our addresses change (libp2p's `self:peer:update`, a listener opening
 * or closing). `wanDhtMode(node.services.wanDHT)` finds the controller of a node's WAN DHT.
 */
import type { KadDHT, KadDHTComponents } from '@libp2p/kad-dht'
import type { Multiaddr } from '@multiformats/multiaddr'
import { defaultAddressClass, type AddressClassifier } from './address-class.js'

export type DhtServerMode = 'client' | 'server'

/** What WanDhtMode reads of the node: our addresses and the events that say they changed. */
export type WanDhtModeComponents = Pick<KadDHTComponents, 'addressManager' | 'events'> & Partial<Pick<KadDHTComponents, 'logger'>>

const controllers = new WeakMap<object, WanDhtMode>()

export class WanDhtMode {
  private readonly dht: KadDHT
  private readonly components: WanDhtModeComponents
  private readonly classify: AddressClassifier
  private _reachable: boolean | undefined
  /** mode changes, one at a time (kad-dht's setMode awaits between unhandle and handle) */
  private queue: Promise<void> = Promise.resolve()

  constructor (dht: KadDHT, components: WanDhtModeComponents, classify: AddressClassifier = defaultAddressClass) {
    this.dht = dht
    this.components = components
    this.classify = classify
    const look = (): void => { void this.evaluate() }
    components.events.addEventListener('self:peer:update', look)
    components.events.addEventListener('transport:listening', look)
    components.events.addEventListener('transport:close', look)
    controllers.set(dht, this)
  }

  /** The DHT's mode now. */
  get mode (): DhtServerMode {
    return this.dht.getMode()
  }

  /** The last reachability signal: true, false, or undefined (none: our addresses decide). */
  get reachable (): boolean | undefined {
    return this._reachable
  }

  /**
   * What we know of our reachability from outside (AutoNAT, a port mapping, an operator):
   * true serves, false stays a client, undefined lets our addresses decide again. Resolves once
   * the mode is set.
   */
  async setReachable (reachable: boolean | undefined): Promise<void> {
    this._reachable = reachable
    await this.evaluate()
  }

  /** The mode our addresses and the reachability signal call for. */
  wanted (): DhtServerMode {
    if (this._reachable != null) return this._reachable ? 'server' : 'client'
    return this.components.addressManager.getAddresses().some(ma => this.servesFrom(ma)) ? 'server' : 'client'
  }

  /** Sets the mode we want, if the DHT runs (a stopped one keeps its mode for its next start). */
  async evaluate (): Promise<void> {
    const next = this.queue.then(async () => {
      if (!isStarted(this.dht)) return
      const mode = this.wanted()
      if (mode !== this.dht.getMode()) await this.dht.setMode(mode)
    }).catch((err: unknown) => {
      this.components.logger?.forComponent('bitswarm:wan-dht-mode').error('could not set the WAN DHT mode - %e', err)
    })
    this.queue = next
    await next
  }

  /** A public address that is our own: a relay's address is the relay's, not a way in to us. */
  private servesFrom (ma: Multiaddr): boolean {
    if (ma.getComponents().some(c => c.name === 'p2p-circuit')) return false
    return this.classify(ma) === 'public'
  }
}

/**
 * A kad-dht factory whose DHT gets a WanDhtMode (pass it `clientMode: true`: an explicit mode
 * turns kad-dht's own switching off, and it starts as a client until we know better).
 */
export function withWanMode (factory: (components: KadDHTComponents) => KadDHT, classify?: AddressClassifier): (components: KadDHTComponents) => KadDHT {
  return (components) => {
    const dht = factory(components)
    // kept alive by the node's event listeners; found again through wanDhtMode(dht)
    new WanDhtMode(dht, components, classify)
    return dht
  }
}

/** The mode controller of a WAN DHT made by withWanMode (undefined for any other). */
export function wanDhtMode (dht: unknown): WanDhtMode | undefined {
  return dht != null && typeof dht === 'object' ? controllers.get(dht) : undefined
}

function isStarted (dht: KadDHT): boolean {
  const started = (dht as { isStarted?: () => boolean }).isStarted
  return typeof started === 'function' ? started.call(dht) : true
}
