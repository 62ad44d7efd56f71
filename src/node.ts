/**
 * The libp2p node every bitswarm peer runs: TCP + Noise + Yamux, identify, ping, Kademlia DHTs
 * (a LAN one and an internet one, see dhtServices), circuit relay v2 (dialling relayed addresses;
 * a reservation only on the relays it is given) and DCUtR — and nothing that reaches out on its
 * own to peers it was not told about (no bootstrap list, no mDNS, no UPnP unless asked, no relay
 * it was not given). `libp2pDefaults` gives its options to a program
 * that builds the node itself (Helia's shape: change what you need, `createLibp2p`, pass it in).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { autoNAT } from '@libp2p/autonat'
import { identify } from '@libp2p/identify'
import { kadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pOptions, type ServiceFactoryMap } from 'libp2p'
import { serviceCapabilities, type Libp2p, type PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import { PendingInbound, type PendingInboundInit } from './net/pending-inbound.js'
import { privateAddressesMapper, publicAddressesMapper, type AddressClassifier } from './net/address-class.js'
import { wanDhtMode, withWanMode, type WanDhtMode } from './net/dht-mode.js'
import { splitPeerAddr, withPeerId } from './net/addr.js'
import { libp2pLogger } from './net/logger.js'
import { noiseCrypto } from './net/noise-crypto.js'
import { Libp2pNodeError } from './errors.js'

/** kad-dht's protocol for a private/LAN DHT: keeps us off the public Amino DHT (/ipfs/kad/1.0.0) */
export const DHT_PROTOCOL = '/ipfs/lan/kad/1.0.0'

/**
 * The protocol of bitswarm's internet (WAN) DHT: a table of our own, not the IPFS Amino DHT
 * (`/ipfs/kad/1.0.0`). We never dial IPFS bootstrap nodes, but a program may run bitswarm on a
 * libp2p node of its own that is connected to IPFS peers (a Helia node); under Amino's id, its
 * WAN DHT would join that network of many thousands of peers: our provider records would go to
 * them, their queries would come to us, and lookups would wander through peers that know nothing
 * of bitswarm. Under our own id only bitswarm peers (they find each other through trackers,
 * links, bootstrap addresses and the peer cache) share the table. The LAN id stays kad-dht's
 * LAN one, for the peers already running.
 */
export const WAN_DHT_PROTOCOL = '/bitswarm/kad/1.0.0'

/**
 * Which Kademlia DHTs a peer runs and uses: `auto` both side by side (as Helia and kubo run a
 * LAN and a WAN DHT), `lan` the LAN one (peers' private addresses), `wan` the internet one
 * (public addresses), `off` none.
 */
export type DhtMode = 'auto' | 'lan' | 'wan' | 'off'
export const DHT_MODES: readonly DhtMode[] = ['auto', 'lan', 'wan', 'off']

/** PeerOptions' `dht` as a mode: true (or unset) is `auto`, false is `off`. */
export function dhtModeOf (dht: boolean | DhtMode | undefined): DhtMode {
  if (dht === undefined || dht === true) return 'auto'
  if (dht === false) return 'off'
  return dht
}

// a type, not an interface: libp2p's ServiceMap needs an index signature an interface lacks
// `dht` is the LAN DHT (its name from before there were two), `wanDHT` the internet one: each
// present when the node runs it (see DhtMode)
export type BitswarmServices = { identify: Identify, ping: Ping, dht?: KadDHT, wanDHT?: KadDHT, dcutr: unknown, autoNAT: unknown }
export type BitswarmNode = Libp2p<BitswarmServices>

/**
 * Every IPv4 and every IPv6 address of the host, on ports of the system's choosing. A host
 * without IPv6 still starts: when every IPv4 address is listened on and every IPv6 one fails,
 * libp2p's transport manager takes it for "no IPv6 here" and goes on (its `ipv6Unsupported`
 * check); any other failure to listen is fatal, which is what an explicit `--listen` wants.
 * @libp2p/tcp listens on IPv6 with `ipv6Only`, so both may use the same fixed port.
 */
export const DEFAULT_LISTEN: readonly string[] = ['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0']

/**
 * Inbound connections being upgraded (TCP accepted, Noise and Yamux not done) at once, in total.
 * libp2p's default of 10 let ten silent sockets lock the door; one costs a socket and a few KiB.
 */
export const MAX_PENDING_INBOUND = 128
/** An inbound connection must be through Noise and Yamux within this many ms (libp2p: 10 s). */
export const INBOUND_UPGRADE_TIMEOUT = 5_000

export interface NodeInit {
  /** listen addresses (default `/ip4/0.0.0.0/tcp/0` and `/ip6/::/tcp/0`, see DEFAULT_LISTEN) */
  listen?: string[]
  /**
   * addresses to advertise besides the listen addresses (a port forwarded on the router, a
   * public address), without `/p2p/<id>`; they come first in `getMultiaddrs()` (announceOptions)
   */
  announce?: string[]
  /** the node's identity (default: a new Ed25519 key) */
  privateKey?: PrivateKey
  /** the bound on inbound connections in progress per IP address (default: 8, loopback exempt) */
  pendingInbound?: PendingInboundInit
  /** where refused connections are reported (rate-limited) */
  log?: (msg: string) => void
  /**
   * which Kademlia DHTs the node runs (default `auto`: the LAN one as `services.dht` and the
   * internet one as `services.wanDHT`; `off`: none)
   */
  dht?: DhtMode
  /**
   * which addresses are public, private or loopback (default: defaultAddressClass). The WAN DHT
   * keeps the public ones and serves once one of ours is public; the LAN DHT keeps the others.
   */
  addressClass?: AddressClassifier
  /**
   * relays (multiaddrs with `/p2p/<id>`) to hold a reservation on, so that peers who cannot dial
   * us reach us through them: the node listens on `/p2p-circuit` (the peer dials the relays
   * once started). Without relays the node still dials relayed addresses others advertise.
   */
  relays?: string[]
}

/** The node a peer builds for itself, not started (the peer starts it). */
export async function createNode (init: NodeInit = {}): Promise<BitswarmNode> {
  // started by the caller, once its protocol handlers are ready to be registered
  return await createLibp2p({ ...libp2pDefaults(init), start: false })
}

/**
 * The options of bitswarm's own node, for `createLibp2p`: a program may add transports or
 * services, then pass the node as `libp2p` to `seed`/`get`. A fresh connection gater each call.
 */
export function libp2pDefaults (init: NodeInit = {}): Libp2pOptions<BitswarmServices> {
  return {
    ...(init.privateKey != null ? { privateKey: init.privateKey } : {}),
    addresses: {
      listen: [
        ...(init.listen != null && init.listen.length > 0 ? init.listen : DEFAULT_LISTEN),
        // a reservation on each relay the peer dials (the relays option)
        ...(init.relays != null && init.relays.length > 0 ? ['/p2p-circuit'] : [])
      ],
      ...announceOptions(init.announce)
    },
    // circuit relay v2: dial peers behind a relay, and be reached through ours (see net/relay.ts)
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    ...libp2pLogger(),
    connectionManager: {
      // a swarm member talks to many peers; the default cap is ample but dials must not hang
      dialTimeout: 10_000,
      // Sockets that connect and never speak hold a pending slot each until the upgrade times
      // out. Room for many, a shorter wait (a Noise XX handshake and two protocol negotiations
      // take a few round trips: well under a second on a LAN, a couple of seconds on a slow
      // link), and a bound per IP address (the gater below) so that one host cannot hold them
      // all; libp2p's own limit of 5 new inbound connections a second per host stays.
      maxIncomingPendingConnections: MAX_PENDING_INBOUND,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT,
      inboundConnectionThreshold: 5
    },
    connectionGater: new PendingInbound({ ...init.pendingInbound, log: init.pendingInbound?.log ?? init.log }).gater(),
    services: {
      // kad-dht depends on both: identify tells it which peers speak the DHT protocol (that is
      // how connections land in the routing table), ping vets a contact before it is added
      identify: identify(),
      ping: ping(),
      // DCUtR: over a relayed connection, try to open a direct one. js-libp2p cannot punch TCP
      // holes from Node (no SO_REUSEPORT, see STACK.md), but it does upgrade when one side is
      // dialable (a forwarded port, UPnP): then the direct connection replaces the relayed one
      dcutr: dcutr(),
      // AutoNAT: peers we are connected to dial our public addresses back; one that answers
      // confirms it, and only then does libp2p advertise a public address it found on an
      // interface (a server on a public IP without --announce). It never dials private
      // addresses, so on a LAN, behind a NAT or in the test namespaces it stays quiet
      autoNAT: autoNAT(),
      // the Kademlia DHTs (see dhtServices)
      ...dhtServices(init)
    }
  }
}

/**
 * The DHT services of `libp2pDefaults`: the LAN DHT as `dht`, the internet one as `wanDHT`, both,
 * one or none (NodeInit `dht`). What a DHT does on its own, all of it towards peers it learnt from
 * connections we made or accepted and from their answers (filtered by its mapper): a self-query
 * at start (it waits for the first peer; every other query waits for it) and every 5 min, a
 * routing-table refresh at start and every 5 min, pings to vet new and evict stale contacts,
 * keep-alive re-dials of its 20 closest peers, and a re-provide of our records after 24 h. No
 * bootstrap list, so nothing reaches out to peers nobody named. A peer joins a table when
 * identify says it serves that DHT's protocol and its mapper leaves it an address.
 */
function dhtServices (init: NodeInit): Pick<ServiceFactoryMap<BitswarmServices>, 'dht' | 'wanDHT'> {
  const mode = init.dht ?? 'auto'
  const common = {
    // per-message timeout adapts between 5 s and 60 s by default; a peer that has not answered
    // in 10 s is gone (matches dialTimeout), so one dead contact cannot hold a query path for a
    // minute
    networkDialTimeout: { maxTimeout: 10_000 },
    // every query (provide, findProviders) waits for the first self-query, which by default
    // starts 1 s after start; it waits for the first routing-table peer anyway, so start it
    // at once: a node that joins right away answers ~0.7 s sooner
    initialQuerySelfInterval: 0
  }
  const services: Pick<ServiceFactoryMap<BitswarmServices>, 'dht' | 'wanDHT'> = {}
  if (mode === 'auto' || mode === 'lan') {
    services.dht = kadDHT({
      ...common,
      protocol: DHT_PROTOCOL,
      // the default (client mode until a public address shows up) never serves on a LAN
      clientMode: false,
      // kad-dht's default mapper drops private addresses such as 127.0.0.1 / 192.168.x: keep
      // those, drop public ones (this DHT is for peers that reach each other directly); with
      // the default classifier, what removePublicAddressesMapper keeps
      peerInfoMapper: privateAddressesMapper(init.addressClass)
    })
  }
  if (mode === 'auto' || mode === 'wan') {
    services.wanDHT = withWanMode(kadDHT({
      ...common,
      protocol: WAN_DHT_PROTOCOL,
      // a client until one of our addresses is public or we are told we are reachable
      // (WanDhtMode; an explicit mode also turns off kad-dht's own switching, which would use
      // its own idea of a public address): a peer behind a NAT must not be anyone's contact
      clientMode: true,
      // public addresses only: a LAN address handed to a peer elsewhere leads nowhere (or to
      // the wrong host on that peer's own LAN)
      peerInfoMapper: publicAddressesMapper(init.addressClass),
      // two DHTs on one node keep their records, logs and metrics apart (kad-dht's advice)
      datastorePrefix: '/dht-wan',
      logPrefix: 'libp2p:kad-dht:wan',
      metricsPrefix: 'libp2p_kad_dht_wan'
    }), init.addressClass)
  }
  return services
}

/** The mode controller of a node's WAN DHT (`services.wanDHT`), e.g. to pass it AutoNAT's verdict. */
export function wanDhtModeOf (node: Libp2p): WanDhtMode | undefined {
  return wanDhtMode((node.services as Record<string, unknown>).wanDHT)
}

/**
 * A node a program built (`libp2p` option) checked for what a peer uses: identify (peer exchange
 * learns a peer's listen addresses from it; kad-dht needs it) and, when the peer uses a DHT,
 * kad-dht (which brings ping) under `services.dht` (LAN) and/or `services.wanDHT` (internet):
 * `lan` needs the first, `wan` the second, `auto` (true) at least one and uses those present.
 * Returns it typed as our own kind of node; a DHT it does not use may be absent.
 */
export function checkNode (node: Libp2p, options: { dht: boolean | DhtMode }): BitswarmNode {
  const services = Object.values(node.services as Record<string, unknown>)
  const has = (capability: string): boolean => services.some(s => hasCapability(s, capability))
  if (!has('@libp2p/identify')) throw new Libp2pNodeError('the libp2p node has no identify service: add `identify: identify()` (from @libp2p/identify) to its services')
  const mode = dhtModeOf(options.dht)
  if (mode === 'off') return node as BitswarmNode
  const named = node.services as Record<string, unknown>
  const wanted = mode === 'lan' ? ['dht'] : mode === 'wan' ? ['wanDHT'] : ['dht', 'wanDHT'].filter(name => named[name] != null)
  if (wanted.length === 0 || (mode === 'lan' && named.dht == null)) {
    throw new Libp2pNodeError(has('@libp2p/kad-dht')
      ? 'the libp2p node has a kad-dht service under another name: bitswarm uses `services.dht` (the LAN DHT) and `services.wanDHT` (the internet one) (or pass `dht: false`)'
      : 'the libp2p node has no kad-dht service: add `dht: kadDHT({ … })` to its services (see libp2pDefaults()), or pass `dht: false`')
  }
  if (mode === 'wan' && named.wanDHT == null) {
    throw new Libp2pNodeError('the libp2p node has no `services.wanDHT`, the internet DHT `dht: \'wan\'` uses: build the node with libp2pDefaults({ dht: \'wan\' }) (or \'auto\'), or pass another `dht` mode')
  }
  for (const name of wanted) {
    if (!hasCapability(named[name], '@libp2p/kad-dht')) throw new Libp2pNodeError(`\`services.${name}\` of the libp2p node is not a kad-dht (@libp2p/kad-dht) service`)
  }
  return node as BitswarmNode
}

function hasCapability (service: unknown, capability: string): boolean {
  if (service == null || typeof service !== 'object') return false
  const caps = (service as { [serviceCapabilities]?: unknown })[serviceCapabilities]
  return Array.isArray(caps) && caps.includes(capability)
}

/**
 * libp2p's address options for `announce`. Its `addresses.announce` would *replace* the listen
 * addresses (a LAN neighbour or a peer on the same host would then have to go out through the
 * router and back in, which many routers do not do), so the addresses are *appended*
 * (`appendAnnounce`), as a BitTorrent client adds a forwarded port. libp2p counts announced
 * addresses as confirmed from the start (no AutoNAT round needed: we know our own router), so
 * `getMultiaddrs()`, identify, the tracker and peer exchange carry them at once. libp2p lists
 * them after the interfaces' addresses; the filter puts them first, where the cap on addresses
 * per tracker record (MAX_ANNOUNCE_ADDRS) and the share link's few peers cannot cut them off.
 */
function announceOptions (announce: string[] | undefined): { appendAnnounce?: string[], announceFilter?: (addrs: Multiaddr[]) => Multiaddr[] } {
  if (announce == null || announce.length === 0) return {}
  const wanted = new Set(announce.map(a => splitPeerAddr(a).bare.toString()))
  const isAnnounced = (ma: Multiaddr): boolean => wanted.has(splitPeerAddr(ma).bare.toString())
  return {
    appendAnnounce: [...wanted],
    announceFilter: (addrs) => [...addrs.filter(isAnnounced), ...addrs.filter(ma => !isAnnounced(ma))]
  }
}

/**
 * The node's dialable addresses, without the `/p2p/<id>` suffix (as the tracker stores them).
 * `announce` addresses are among them, first (see announceOptions): libp2p takes them as
 * confirmed, unlike a public interface address, which it holds back until something confirms it.
 */
export function announceAddrs (node: Libp2p): string[] {
  const out = new Set<string>()
  for (const ma of node.getMultiaddrs()) out.add(splitPeerAddr(ma).bare.toString())
  return [...out]
}

/** The node's addresses with `/p2p/<id>`, for people and for `--bootstrap`. */
export function fullAddrs (node: Libp2p): string[] {
  const id = node.peerId.toString()
  return announceAddrs(node).map(a => withPeerId(a, id))
}
