/**
 * UPnP port mapping: ask the home router (the LAN's Internet Gateway Device) to forward a TCP port
 * of its internet address to this host, so that peers behind other NATs can dial us directly, as
 * a port forwarded by hand would (`--announce`), without anyone touching the router.
 *
 * Built on `@achingbrain/nat-port-mapper` (UPnP IGD v2: SSDP discovery, then SOAP requests to the
 * gateway), not on libp2p's `@libp2p/upnp-nat` service, which refuses any router whose external
 * address is private (`DoubleNATError`) and maps in the background after the node has started.
 * Here the mapping is made before the node starts, so the address it gives is among the ones the
 * peer announces from its first announce on; and a private external address is the caller's
 * business (a router behind a carrier's NAT, or a test's namespaced "internet").
 *
 * Nothing here may hold a peer's start for long: discovery gives up after a few seconds, every
 * request to the gateway has its own timeout, and every failure is one `UpnpError` that callers
 * take for "no mapping" (one line in the log, then on without it).
 *
 * The lease is renewed from a timer (unref'd: it never keeps a process alive) at half its length;
 * `unmap()` stops renewing and deletes the mapping (best effort: a router that cannot be reached
 * drops it when the lease ends).
 */
import { createSocket } from 'node:dgram'
import { createServer, isIPv4 } from 'node:net'
import type { Gateway } from '@achingbrain/nat-port-mapper'

/** How long to wait for a gateway to answer the SSDP search. */
export const UPNP_DISCOVERY_TIMEOUT = 3_000
/** How long one request to the gateway (map, external address, unmap) may take. */
export const UPNP_REQUEST_TIMEOUT = 4_000
/**
 * The lease asked for. nat-port-mapper never asks for less than an hour (routers commonly refuse
 * shorter leases on UPnP IGD v2), so shorter `ttl`s are raised to this.
 */
export const UPNP_MIN_TTL = 3_600_000
/** After a failed renewal, the next try comes this much later (the lease still runs meanwhile). */
const RETRY_AFTER = 60_000

/** No gateway answered, or the one that did refused the mapping or gave no usable address. */
export class UpnpError extends Error {
  override name = 'UpnpError'
}

export interface MapPortOptions {
  /** the TCP port on this host to forward to (the gateway is asked for the same external port) */
  internalPort: number
  /** this host's LAN address to forward to (default: the one the gateway is reached from) */
  internalHost?: string
  /** the mapping's description, shown in the router's list (default 'bitswarm') */
  description?: string
  /** the lease in ms (default and minimum: UPNP_MIN_TTL); renewed at half of it */
  ttl?: number
  /** ms to wait for a gateway to answer (default UPNP_DISCOVERY_TIMEOUT) */
  discoveryTimeout?: number
  /** ms each request to the gateway may take (default UPNP_REQUEST_TIMEOUT) */
  requestTimeout?: number
  /** aborting it gives up the search and the mapping under way (rejects with its reason) */
  signal?: AbortSignal
  /** where failed renewals are reported (default: nowhere) */
  log?: (msg: string) => void
}

export interface UpnpMapping {
  /** the router's internet address, as it reports it (an IPv4 address; may be private: double NAT) */
  externalIp: string
  /** the port on `externalIp` forwarded to us (the one asked for unless the router chose another) */
  externalPort: number
  /** the LAN address the router forwards to */
  internalHost: string
  internalPort: number
  /** the gateway's address (host:port of its UPnP control server), for logs */
  gateway: string
  /** Stops renewing and deletes the mapping; never throws; every call returns the same promise. */
  unmap: () => Promise<void>
}

/** The first IPv4 gateway that answers the SSDP search within `timeoutMs`. */
async function findGateway (timeoutMs: number, signal: AbortSignal | undefined): Promise<Gateway> {
  // loaded only when asked for, and left out of the CLI's bundle (package.json's build: its
  // CommonJS dependencies cannot be bundled into an ES module)
  const { upnpNat } = await import('@achingbrain/nat-port-mapper')
  // nat-port-mapper renews nothing on its own here: its timer would keep the process alive
  const client = upnpNat({ autoRefresh: false })
  const search = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(signal != null ? [signal] : [])])
  // searchInterval: the M-SEARCH is one UDP datagram; sent again each second in case one is lost.
  // Leaving the loop (return) ends the search and closes its sockets.
  for await (const gateway of client.findGateways({ signal: search, searchInterval: 1_000 })) {
    if (gateway.family === 'IPv4') return gateway
  }
  signal?.throwIfAborted()
  throw new UpnpError(`no UPnP gateway answered within ${formatSeconds(timeoutMs)}`)
}

/**
 * This host's address on the way to `host`: the source address the kernel picks for it. A UDP
 * socket's connect() only looks up the route; nothing is sent.
 */
async function localAddressTowards (host: string): Promise<string> {
  const socket = createSocket('udp4')
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.connect(9, host, () => { resolve() })
    })
    return socket.address().address
  } finally {
    socket.close()
  }
}

/**
 * Finds the LAN's gateway and asks it to forward TCP `internalPort` on its internet address to
 * this host. Rejects with UpnpError when no gateway answers in time or the gateway refuses (or
 * with the signal's reason when aborted).
 */
export async function mapPort (opts: MapPortOptions): Promise<UpnpMapping> {
  const { internalPort } = opts
  if (!Number.isInteger(internalPort) || internalPort < 1 || internalPort > 65535) throw new RangeError(`internalPort must be 1..65535, got ${internalPort}`)
  const requestTimeout = opts.requestTimeout ?? UPNP_REQUEST_TIMEOUT
  const ttl = Math.max(opts.ttl ?? UPNP_MIN_TTL, UPNP_MIN_TTL)
  const log = opts.log ?? (() => {})
  /** a signal for one request: its own timeout, and the caller's signal */
  const request = (): AbortSignal => AbortSignal.any([AbortSignal.timeout(requestTimeout), ...(opts.signal != null ? [opts.signal] : [])])

  const gateway = await findGateway(opts.discoveryTimeout ?? UPNP_DISCOVERY_TIMEOUT, opts.signal)
  const where = `${gateway.host}:${gateway.port}`
  const mapOptions = {
    protocol: 'TCP' as const,
    // the same port outside as inside, if it is free there (UPnP IGD v2 lets the router pick
    // another one otherwise, and says which)
    externalPort: internalPort,
    description: opts.description ?? 'bitswarm',
    ttl,
    autoRefresh: false
  }
  let internalHost: string
  let externalIp: string
  let externalPort: number
  try {
    internalHost = opts.internalHost ?? await localAddressTowards(gateway.host)
    // AddAnyPortMapping, then (our LAN address being private) GetExternalIPAddress
    const mapped = await gateway.map(internalPort, internalHost, { ...mapOptions, signal: request() })
    externalIp = mapped.externalHost
    externalPort = mapped.externalPort
  } catch (err) {
    await gateway.stop({ signal: request() }).catch(() => {})
    opts.signal?.throwIfAborted()
    throw new UpnpError(`the UPnP gateway at ${where} did not map TCP port ${internalPort}: ${(err as Error).message}`)
  }
  // miniupnpd, for one, reports an empty address when it has no usable one
  if (!isIPv4(externalIp) || externalIp === '0.0.0.0' || !Number.isInteger(externalPort) || externalPort < 1 || externalPort > 65535) {
    await gateway.stop({ signal: request() }).catch(() => {})
    throw new UpnpError(`the UPnP gateway at ${where} mapped TCP port ${internalPort} but reports no usable external address (${JSON.stringify(externalIp)}:${externalPort})`)
  }

  let closed = false
  let timer: NodeJS.Timeout | undefined
  const renew = (after: number): void => {
    timer = setTimeout(() => {
      // the same request as the first: the router extends the lease of a mapping it has.
      // (nat-port-mapper keeps one record per map() call; unmap() deletes the port for each)
      gateway.map(internalPort, internalHost, { ...mapOptions, signal: request() }).then((m) => {
        if (m.externalPort !== externalPort) log(`upnp: the router now forwards port ${m.externalPort}, not ${externalPort}: peers that have our old address cannot reach us there`)
        if (!closed) renew(ttl / 2)
      }, (err: Error) => {
        if (closed) return
        log(`upnp: could not renew the port mapping at ${where}: ${err.message} (trying again in ${formatSeconds(RETRY_AFTER)})`)
        renew(RETRY_AFTER)
      })
    }, after)
    timer.unref()
  }
  renew(ttl / 2)

  let unmapping: Promise<void> | undefined
  const unmap = async (): Promise<void> => {
    unmapping ??= (async () => {
      closed = true
      clearTimeout(timer)
      // deletes what was mapped (nat-port-mapper logs and swallows a failure: the lease then
      // ends by itself) and ends the gateway's requests under way. It deletes the external port
      // equal to internalPort: the one we asked for, which routers give when it is free.
      await gateway.stop({ signal: AbortSignal.timeout(requestTimeout) }).catch(() => {})
    })()
    await unmapping
  }
  return { externalIp, externalPort, internalHost, internalPort, gateway: where, unmap }
}

/**
 * A TCP port in the dynamic range (49152–65535, the ones no service claims) that nothing on this
 * host listens on now: checked by listening on it for a moment. Another program may take it
 * before we listen on it for good; the node's listen then fails loudly.
 */
export async function freeTcpPort (attempts = 20): Promise<number> {
  for (let i = 0; i < attempts; i++) {
    const port = 49152 + Math.floor(Math.random() * (65536 - 49152))
    if (await canListen(port)) return port
  }
  throw new UpnpError(`no free TCP port found in 49152-65535 after ${attempts} tries`)
}

async function canListen (port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => { server.close(() => { resolve(true) }) })
  })
}

function formatSeconds (ms: number): string {
  return `${Math.round(ms / 100) / 10} s`
}
