// `--upnp` (seed, get): before the peer starts, ask the home router for a port mapping (see
// src/net/upnp.ts), listen on the port mapped and announce the router's address with it. A
// failure is one warning line; the peer then starts as it would have without --upnp.
import { multiaddr } from '@multiformats/multiaddr'
import { defaultAddressClass, isPublicAddress, type AddressClassifier } from '../net/address-class.js'
import { freeTcpPort, mapPort } from '../net/upnp.js'
import { DEFAULT_LISTEN } from '../node.js'
import type { Output } from './output.js'

export interface UpnpListen {
  /** the listen addresses to use instead of --listen's (the mapped port filled in) */
  listen: string[]
  /** the router's address and port, to announce besides --announce's */
  announce: string[]
  /** deletes the mapping (never throws; once is enough, more calls do nothing more) */
  unmap: () => Promise<void>
}

/** The first `/ip4/<ip>/tcp/<port>` listen address: its index and parts. */
function firstTcp4 (listen: string[]): { index: number, ip: string, port: number } | undefined {
  for (const [index, a] of listen.entries()) {
    const c = multiaddr(a).getComponents()
    if (c.length === 2 && c[0].name === 'ip4' && c[1].name === 'tcp') return { index, ip: c[0].value ?? '', port: Number(c[1].value) }
  }
  return undefined
}

/**
 * Picks the port (the first `/ip4/…/tcp/<port>` of `--listen`, or when that is port 0 or there
 * is no --listen, a free one in 49152–65535), has the router forward it, and says so (a `upnp`
 * event). Undefined, after one warning line, when there is nothing to map or no mapping was made.
 */
export async function upnpListen (listen: string[] | undefined, out: Output, addressClass: AddressClassifier = defaultAddressClass): Promise<UpnpListen | undefined> {
  const given = listen != null && listen.length > 0 ? listen : [...DEFAULT_LISTEN]
  const tcp4 = firstTcp4(given)
  if (tcp4 == null) {
    out.warn('upnp: no /ip4/…/tcp/… --listen address to forward (going on without a port mapping)')
    return undefined
  }
  try {
    const port = tcp4.port !== 0 ? tcp4.port : await freeTcpPort()
    const mapping = await mapPort({
      internalPort: port,
      // listening on one address: that one is where the router must forward to
      ...(tcp4.ip !== '0.0.0.0' ? { internalHost: tcp4.ip } : {}),
      description: 'bitswarm',
      log: (msg) => { out.warn(msg) }
    })
    const external = `/ip4/${mapping.externalIp}/tcp/${mapping.externalPort}`
    out.event({ event: 'upnp', externalIp: mapping.externalIp, externalPort: mapping.externalPort, internalPort: port },
      `upnp: ${mapping.externalIp}:${mapping.externalPort} forwarded to this peer's port ${port}`)
    if (!isPublicAddress(multiaddr(external), addressClass)) {
      out.warn(`upnp: the router's internet address ${mapping.externalIp} is not public: the router is itself behind a NAT (a provider's?), and peers beyond that one may still not reach this peer`)
    }
    return {
      listen: given.map((a, i) => i === tcp4.index ? `/ip4/${tcp4.ip}/tcp/${port}` : a),
      announce: [external],
      unmap: mapping.unmap
    }
  } catch (err) {
    out.warn(`upnp: ${(err as Error).message} (going on without a port mapping)`)
    return undefined
  }
}
