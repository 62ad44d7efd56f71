/**
 * `--ui [HOST:]PORT`: the live page (src/ui/) of `seed`, `get` and `demo`, in the command line's
 * words: the flag parsed, the server started, its `ui` event printed.
 */
import { isIP } from 'node:net'
import type { PeerLike } from '../ui/peer-source.js'
import type { UiServer } from '../ui/server.js'
import type { UiSource } from '../ui/snapshot.js'
import { UsageError } from './errors.js'
import { safeText, type Output } from './output.js'

export interface UiAddress { host: string, port: number }

/** The page's host when `--ui` names only a port: loopback, never the whole network by default. */
export const DEFAULT_UI_HOST = '127.0.0.1'

/** `8080`, `:8080`, `127.0.0.1:0`, `0.0.0.0:8080`, `localhost:8080`, `[::1]:8080`. */
export function parseUiAddress (text: string): UiAddress {
  const bad = (why: string): UsageError => new UsageError(`--ui takes [HOST:]PORT (e.g. 8080, 127.0.0.1:0, [::1]:8080): ${why}, got ${JSON.stringify(text)}`)
  let host = DEFAULT_UI_HOST
  let port = text
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(text)
  if (v6 != null) {
    if (isIP(v6[1]) !== 6) throw bad('not an IPv6 address in the brackets')
    host = v6[1]
    port = v6[2]
  } else if (text.includes(':')) {
    const at = text.lastIndexOf(':')
    if (text.indexOf(':') !== at) throw bad('an IPv6 address goes in brackets')
    host = text.slice(0, at) === '' ? DEFAULT_UI_HOST : text.slice(0, at)
    port = text.slice(at + 1)
    if (!/^[A-Za-z0-9.-]+$/.test(host)) throw bad('not a host name or address')
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw bad('the port must be 0..65535')
  return { host, port: Number(port) }
}

/** Loopback: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/**
 * Starts the page at `address` showing `sources`, and prints where it is (`ui` event). Beyond
 * loopback, says who can read it.
 */
export async function startUi (address: UiAddress, sources: readonly UiSource[] | (() => readonly UiSource[]), out: Output, opts: { interval: number, title: string, human?: (url: string) => string }): Promise<UiServer> {
  const { startUiServer } = await import('../ui/server.js')
  let server: UiServer
  try {
    server = await startUiServer({ host: address.host, port: address.port, sources, interval: opts.interval, title: opts.title })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE') throw new UsageError(`--ui ${address.host}:${address.port}: the port is in use`)
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw new UsageError(`--ui ${address.host}:${address.port}: no such address on this machine`)
    throw err
  }
  if (!isLoopbackHost(address.host)) out.warn(`bitswarm: the page at ${server.url} is open to anyone who can reach ${address.host} (read-only: it shows the peers, their addresses and the file's name)`)
  out.event({ event: 'ui', url: server.url }, opts.human?.(server.url) ?? safeText`ui: ${server.url}`)
  return server
}

/** `seed --ui` and `get --ui`: the page of this one peer, a snapshot each stats interval. */
export async function startPeerUi (address: UiAddress, kind: 'seed' | 'get', peer: PeerLike, out: Output, statsIntervalSeconds: number): Promise<UiServer> {
  const { peerSource } = await import('../ui/peer-source.js')
  const name = kind === 'seed' ? 'seeder' : 'downloader'
  return await startUi(address, [peerSource(name, peer)], out, { interval: statsIntervalSeconds * 1000, title: `bitswarm ${kind}` })
}
