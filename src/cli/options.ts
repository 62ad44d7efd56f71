// Command-line option checks shared by the commands: each failure is a UsageError (exit 2).
import { multiaddr } from '@multiformats/multiaddr'
import { parseRate } from '../throttle.js'
import { UsageError } from './errors.js'

export function positiveNumber (value: string | undefined, name: string, fallback: number): number {
  if (value == null) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${value}`)
  return n
}

/** A whole number >= 1 given as --flag (undefined when absent). */
export function wholeOption (value: string | undefined, flag: string): number | undefined {
  if (value == null) return undefined
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a whole number >= 1, got ${value}`)
  return n
}

/** A TCP port 0..65535 given as --flag (`fallback` when absent; 0: any free port). */
export function portOption (value: string | undefined, flag: string, fallback: number): number {
  if (value == null) return fallback
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n > 65535) throw new UsageError(`--${flag} must be 0..65535, got ${value}`)
  return n
}

export function rateOption (value: string | undefined, flag = 'max-upload-rate'): number | undefined {
  if (value == null) return undefined
  try {
    return parseRate(value)
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`)
  }
}

export function checkBootstrap (addrs: string[], flag = 'bootstrap'): string[] {
  for (const a of addrs) {
    let ok = false
    try { ok = multiaddr(a).getComponents().some(c => c.name === 'p2p') } catch {}
    if (!ok) throw new UsageError(`--${flag} ${a} must be a multiaddr ending in /p2p/<peer id>`)
  }
  return addrs
}

export function checkUrls (urls: string[]): string[] {
  for (const u of urls) {
    let url: URL
    try { url = new URL(u) } catch { throw new UsageError(`--tracker ${u} is not a URL`) }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--tracker ${u} must be an http(s) URL`)
  }
  return urls
}

/** `--announce` addresses: multiaddrs without /p2p/<id> (the node adds its own). */
export function checkAnnounce (addrs: string[]): string[] {
  for (const a of addrs) {
    let names: string[] = []
    try { names = multiaddr(a).getComponents().map(c => c.name) } catch {}
    if (names.length === 0) throw new UsageError(`--announce ${a} is not a multiaddr (e.g. /ip4/203.0.113.7/tcp/4001)`)
    if (names.includes('p2p')) throw new UsageError(`--announce ${a} must not contain /p2p/<peer id>: the peer adds its own`)
  }
  return addrs
}
