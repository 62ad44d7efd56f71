/**
 * The libp2p node every bitswarm peer runs: TCP + Noise + Yamux and nothing that reaches out
 * on its own (no bootstrap list, no UPnP, no relay). Services are added by the issues that need
 * them (the DHT, for one).
 */
import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p, PrivateKey } from '@libp2p/interface'

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/0'

export interface NodeInit {
  listen?: string[]
  privateKey?: PrivateKey
}

export async function createNode (init: NodeInit = {}): Promise<Libp2p> {
  return await createLibp2p({
    // started by the caller, once its protocol handlers are ready to be registered
    start: false,
    ...(init.privateKey != null ? { privateKey: init.privateKey } : {}),
    addresses: { listen: init.listen != null && init.listen.length > 0 ? init.listen : [DEFAULT_LISTEN] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // a swarm member talks to many peers; the default cap is ample but dials must not hang
      dialTimeout: 10_000
    }
  })
}

/** The node's dialable addresses, without the `/p2p/<id>` suffix (as the tracker stores them). */
export function announceAddrs (node: Libp2p): string[] {
  const out = new Set<string>()
  for (const ma of node.getMultiaddrs()) {
    const s = ma.toString()
    const i = s.indexOf('/p2p/')
    out.add(i >= 0 ? s.slice(0, i) : s)
  }
  return [...out]
}

/** The node's addresses with `/p2p/<id>`, for people and for `--bootstrap`. */
export function fullAddrs (node: Libp2p): string[] {
  const id = node.peerId.toString()
  return announceAddrs(node).map(a => `${a}/p2p/${id}`)
}
