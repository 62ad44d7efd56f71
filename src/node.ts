/**
 * The libp2p node every bitswarm peer runs: TCP + Noise + Yamux, identify, ping and a LAN
 * Kademlia DHT — and nothing that reaches out on its own to peers it was not told about (no
 * bootstrap list, no mDNS, no UPnP, no relay). `libp2pDefaults` gives its options to a program
 * that builds the node itself (Helia's shape: change what you need, `createLibp2p`, pass it in).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, removePublicAddressesMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { serviceCapabilities, type Libp2p, type PrivateKey } from '@libp2p/interface'
import type { Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import { PendingInbound, type PendingInboundInit } from './net/pending-inbound.js'
import { splitPeerAddr, withPeerId } from './net/addr.js'
import { Libp2pNodeError } from './errors.js'

/** kad-dht's protocol for a private/LAN DHT: keeps us off the public Amino DHT (/ipfs/kad/1.0.0) */
export const DHT_PROTOCOL = '/ipfs/lan/kad/1.0.0'

// a type, not an interface: libp2p's ServiceMap needs an index signature an interface lacks
export type BitswarmServices = { identify: Identify, ping: Ping, dht: KadDHT }
export type BitswarmNode = Libp2p<BitswarmServices>

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/0'

/**
 * Inbound connections being upgraded (TCP accepted, Noise and Yamux not done) at once, in total.
 * libp2p's default of 10 let ten silent sockets lock the door; one costs a socket and a few KiB.
 */
export const MAX_PENDING_INBOUND = 128
/** An inbound connection must be through Noise and Yamux within this many ms (libp2p: 10 s). */
export const INBOUND_UPGRADE_TIMEOUT = 5_000

export interface NodeInit {
  /** listen addresses (default `/ip4/0.0.0.0/tcp/0`) */
  listen?: string[]
  /** the node's identity (default: a new Ed25519 key) */
  privateKey?: PrivateKey
  /** the bound on inbound connections in progress per IP address (default: 8, loopback exempt) */
  pendingInbound?: PendingInboundInit
  /** where refused connections are reported (rate-limited) */
  log?: (msg: string) => void
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
    addresses: { listen: init.listen != null && init.listen.length > 0 ? init.listen : [DEFAULT_LISTEN] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
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
      // What the DHT does on its own, all of it towards peers it learnt from connections we
      // made or accepted and from their answers (private addresses only, see the mapper): a
      // self-query at start (it waits for the first peer; every other query waits for it) and
      // every 5 min, a routing-table refresh at start and every 5 min, pings to vet new
      // and evict stale contacts, keep-alive re-dials of its 20 closest peers, and a re-provide
      // of our records after 24 h. No bootstrap list, so nothing reaches the internet.
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        // the default (client mode until a public address shows up) never serves on a LAN
        clientMode: false,
        // the default mapper drops private addresses such as 127.0.0.1 / 192.168.x: keep those,
        // drop public ones (this DHT is for peers that reach each other directly)
        peerInfoMapper: removePublicAddressesMapper,
        // per-message timeout adapts between 5 s and 60 s by default; a LAN peer that has not
        // answered in 10 s is gone (matches dialTimeout), so one dead contact cannot hold a
        // query path for a minute
        networkDialTimeout: { maxTimeout: 10_000 },
        // every query (provide, findProviders) waits for the first self-query, which by default
        // starts 1 s after start; it waits for the first routing-table peer anyway, so start it
        // at once: a node that joins right away answers ~0.7 s sooner
        initialQuerySelfInterval: 0
      })
    }
  }
}

/**
 * A node a program built (`libp2p` option) checked for what a peer uses: identify (peer exchange
 * learns a peer's listen addresses from it; kad-dht needs it) and, when the peer uses the DHT,
 * kad-dht under `services.dht` (which brings ping). Returns it typed as our own kind of node;
 * without the DHT, `services.dht` may be absent (nothing reads it then).
 */
export function checkNode (node: Libp2p, options: { dht: boolean }): BitswarmNode {
  const services = Object.values(node.services as Record<string, unknown>)
  const has = (capability: string): boolean => services.some(s => hasCapability(s, capability))
  if (!has('@libp2p/identify')) throw new Libp2pNodeError('the libp2p node has no identify service: add `identify: identify()` (from @libp2p/identify) to its services')
  if (options.dht) {
    const dht = (node.services as Record<string, unknown>).dht
    if (dht == null) {
      throw new Libp2pNodeError(has('@libp2p/kad-dht')
        ? 'the libp2p node has a kad-dht service under another name: bitswarm uses `services.dht` (or pass `dht: false`)'
        : 'the libp2p node has no kad-dht service: add `dht: kadDHT({ … })` to its services (see libp2pDefaults()), or pass `dht: false`')
    }
    if (!hasCapability(dht, '@libp2p/kad-dht')) throw new Libp2pNodeError('`services.dht` of the libp2p node is not a kad-dht (@libp2p/kad-dht) service')
  }
  return node as BitswarmNode
}

function hasCapability (service: unknown, capability: string): boolean {
  if (service == null || typeof service !== 'object') return false
  const caps = (service as { [serviceCapabilities]?: unknown })[serviceCapabilities]
  return Array.isArray(caps) && caps.includes(capability)
}

/** The node's dialable addresses, without the `/p2p/<id>` suffix (as the tracker stores them). */
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
