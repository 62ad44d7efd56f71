/**
 * Relays: a node anyone can run that lets peers behind NATs be reached (circuit relay v2), and
 * the rule that says which relayed connections carry a swarm's data.
 *
 * A peer nobody can dial reserves a slot on a relay and advertises `<relay>/p2p-circuit`; others
 * dial it there and the relay splices the two connections. Circuit relay v2 relays bound each
 * relayed connection (by default 128 KiB and 2 minutes): enough to say hello and try a direct
 * connection (DCUtR), not to carry a file. So:
 *  - a stranger's relay, with such limits, is used for signalling only: no swarm session runs
 *    over a relayed connection whose limits are below DATA_RELAY_MIN_BYTES / _SECONDS;
 *  - our relay (`bitswarm relay`, `bitswarm tracker --relay`) carries data under the limits its
 *    operator sets: bytes and time per relayed connection, reservations, relayed connections at
 *    once. A relayed connection that reaches its limit is closed by the relay; the swarm dials
 *    again through it (a new connection, a new allowance), as it would after any disconnect.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { libp2pLogger } from './logger.js'
import { noiseCrypto } from './noise-crypto.js'
import type { Connection, Libp2p, PrivateKey } from '@libp2p/interface'

/** A relayed connection carries swarm data only if it may carry at least this many bytes … */
export const DATA_RELAY_MIN_BYTES = 16 * 1024 * 1024
/** … for at least this long (a stranger's relay: 128 KiB and 120 s, see the module comment). */
export const DATA_RELAY_MIN_SECONDS = 300

export interface RelayLimits {
  /** slots peers may hold at once (default 128) */
  maxReservations?: number
  /** bytes one relayed connection may carry, both ways together, before the relay closes it (default 1 GiB) */
  maxBytesPerConnection?: number
  /** seconds a relayed connection may stay open (default 3600) */
  maxSecondsPerConnection?: number
  /** relayed connections being set up at once (default 64) */
  maxConnections?: number
}

export const DEFAULT_RELAY_LIMITS: Required<RelayLimits> = {
  maxReservations: 128,
  maxBytesPerConnection: 1024 * 1024 * 1024,
  maxSecondsPerConnection: 3600,
  maxConnections: 64
}

/** `limits` with defaults, checked; a RangeError names a bad one. */
export function relayLimits (limits: RelayLimits = {}): Required<RelayLimits> {
  const out = { ...DEFAULT_RELAY_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) }
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a whole number >= 1, got ${String(v)}`)
  }
  return out
}

/** The options of a relay's circuit relay v2 server for these limits. */
export function relayServerInit (limits: RelayLimits = {}): Parameters<typeof circuitRelayServer>[0] {
  const l = relayLimits(limits)
  return {
    reservations: {
      maxReservations: l.maxReservations,
      // explicit limits, carried to both ends (the connection's `limits`): see dataRelayed()
      applyDefaultLimit: true,
      defaultDataLimit: BigInt(l.maxBytesPerConnection),
      defaultDurationLimit: l.maxSecondsPerConnection * 1000
    },
    // each relayed connection is one inbound HOP stream (the dialler's) and one STOP stream
    maxInboundHopStreams: l.maxConnections,
    maxOutboundStopStreams: l.maxConnections
  }
}

/**
 * Does `connection` carry swarm data? A direct one does; a relayed one only through a relay that
 * allows at least DATA_RELAY_MIN_BYTES for DATA_RELAY_MIN_SECONDS (ours: see the module comment).
 */
export function carriesData (connection: Pick<Connection, 'limits'>): boolean {
  const limits = connection.limits
  if (limits == null) return true
  const bytes = limits.bytes
  const seconds = limits.seconds
  return (bytes == null || bytes >= BigInt(DATA_RELAY_MIN_BYTES)) && (seconds == null || seconds >= DATA_RELAY_MIN_SECONDS)
}

/** How we reach a peer over `connection`: directly, or through a relay. */
export function connectionKind (connection: Pick<Connection, 'remoteAddr'>): 'direct' | 'relayed' {
  return connection.remoteAddr.getComponents().some(c => c.name === 'p2p-circuit') ? 'relayed' : 'direct'
}

export interface RelayNodeInit {
  /** listen addresses (default `/ip4/0.0.0.0/tcp/0` and `/ip6/::/tcp/0` where IPv6 is up) */
  listen?: string[]
  /** addresses to advertise besides (or instead of) the listen addresses */
  announce?: string[]
  privateKey?: PrivateKey
  limits?: RelayLimits
}

/** A started relay: a libp2p node with identify, ping and a circuit relay v2 server, nothing else. */
export async function startRelay (init: RelayNodeInit = {}): Promise<Libp2p> {
  const node = await createLibp2p({
    ...(init.privateKey != null ? { privateKey: init.privateKey } : {}),
    addresses: {
      listen: init.listen != null && init.listen.length > 0 ? init.listen : ['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0'],
      ...(init.announce != null && init.announce.length > 0 ? { announce: init.announce } : {})
    },
    // (libp2p starts on IPv4 alone when every IPv6 address fails: a host without IPv6 still relays)
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    ...libp2pLogger(),
    connectionManager: { dialTimeout: 10_000 },
    services: {
      identify: identify(),
      ping: ping(),
      relay: circuitRelayServer(relayServerInit(init.limits))
    }
  })
  return node
}
