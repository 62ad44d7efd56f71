#!/usr/bin/env node
// libp2p v3 needs Promise.withResolvers, which Node 20 lacks: load the polyfill first.
import '../polyfill.js'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Peer } from '../peer.js'
import { NoSwarmSourcesError, OutputDirError, UsageError } from './errors.js'
import { parseRate } from '../throttle.js'
import { multiaddr } from '@multiformats/multiaddr'
import { progressBar, statsEvent, statsLine } from './reporter.js'
import { formatBytes } from './format.js'
import { escapeText, Output, safeText } from './output.js'

const USAGE = `bitswarm — a peer-to-peer file swarm on libp2p

Usage:
  bitswarm tracker [--host 127.0.0.1] [--port 8000] [--json]
  bitswarm seed <file> [--tracker <announce-url>]... [--bootstrap <multiaddr>]...
               [--listen <multiaddr>]... [--json]
  bitswarm get <cid | manifest file> --out <dir> [--tracker <announce-url>]...
               [--bootstrap <multiaddr>]... [--listen <multiaddr>]... [--seed] [--json]
  bitswarm demo [--size <MiB>] [--leechers <n>]

Options:
  --tracker <url>          announce URL of a tracker (repeatable)
  --bootstrap <multiaddr>  a peer (with /p2p/<id>) to join the DHT through (repeatable)
  --no-dht                 do not provide or look up the manifest on the DHT (trackers and
                           peer exchange only)
  --state-dir <dir>        where to remember peers between runs
                           (default $XDG_STATE_HOME/bitswarm or ~/.local/state/bitswarm)
  --listen <multiaddr>     address to listen on (repeatable; default /ip4/0.0.0.0/tcp/0)
  --out <dir>              where \`get\` writes the file
  --seed                   after \`get\` completes, keep seeding until SIGINT/SIGTERM
  --stats-interval <s>     seconds between stats lines (default 1)
  --json                   one JSON object per line on stdout (NDJSON)
  --manifest <path>        (seed) where to write the manifest (default <file>.bitswarm)
  --skip-verify            (seed) trust the file against its existing manifest without hashing it
  --max-upload-rate <rate> cap on upload, all peers together (e.g. 20MiB, 512KiB; default none)
  --rechoke-interval <s>   seconds between choking rounds (default 10)
  --optimistic-interval <s> seconds between optimistic unchoke rotations (default 30)
  -h, --help               this help
`

const PEER_OPTIONS = {
  tracker: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'state-dir': { type: 'string' },
  'no-dht': { type: 'boolean' },
  listen: { type: 'string', multiple: true },
  out: { type: 'string' },
  seed: { type: 'boolean' },
  json: { type: 'boolean' },
  manifest: { type: 'string' },
  'stats-interval': { type: 'string' },
  'rechoke-interval': { type: 'string' },
  'optimistic-interval': { type: 'string' },
  'max-upload-rate': { type: 'string' },
  'skip-verify': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} satisfies ParseArgsConfig['options']

function positiveNumber (value: string | undefined, name: string, fallback: number): number {
  if (value == null) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${value}`)
  return n
}

function rateOption (value: string | undefined): number | undefined {
  if (value == null) return undefined
  try {
    return parseRate(value)
  } catch (err) {
    throw new UsageError(`--max-upload-rate: ${(err as Error).message}`)
  }
}

function checkBootstrap (addrs: string[]): string[] {
  for (const a of addrs) {
    let ok = false
    try { ok = multiaddr(a).getComponents().some(c => c.name === 'p2p') } catch {}
    if (!ok) throw new UsageError(`--bootstrap ${a} must be a multiaddr ending in /p2p/<peer id>`)
  }
  return addrs
}

function checkUrls (urls: string[]): string[] {
  for (const u of urls) {
    let url: URL
    try { url = new URL(u) } catch { throw new UsageError(`--tracker ${u} is not a URL`) }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--tracker ${u} must be an http(s) URL`)
  }
  return urls
}

async function tracker (argv: string[], out: Output): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { host: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help === true) { out.line(USAGE); return }
  const port = values.port == null ? 8000 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${values.port}`)
  // imported here so that `bitswarm tracker` does not load libp2p
  const { createTrackerServer } = await import('../../tracker/server.js')
  const server = createTrackerServer({
    host: values.host ?? '127.0.0.1',
    port,
    // diagnostics and periodic swarm counts go to stderr: with --json, stdout is NDJSON only
    log: (line) => { out.warn(line) }
  })
  await server.start()
  // the server logs its own "listening" line for people; this event is for scripts
  out.event({ event: 'listening', announce: server.announceUrl })
  await untilSignal()
  await server.stop()
}

async function peerCommand (kind: 'seed' | 'get', argv: string[], out: Output): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: PEER_OPTIONS, allowPositionals: true, strict: true })
  if (values.help === true) { out.line(USAGE); return }
  if (positionals.length !== 1) throw new UsageError(kind === 'seed' ? 'seed takes one <file>' : 'get takes one <cid | manifest file>')
  const statsInterval = positiveNumber(values['stats-interval'], 'stats-interval', 1)
  const options = {
    listen: values.listen,
    trackers: checkUrls(values.tracker ?? []),
    bootstrap: checkBootstrap(values.bootstrap ?? []),
    stateDir: values['state-dir'],
    dht: values['no-dht'] !== true,
    choker: {
      rechokeInterval: positiveNumber(values['rechoke-interval'], 'rechoke-interval', 10) * 1000,
      optimisticInterval: positiveNumber(values['optimistic-interval'], 'optimistic-interval', 30) * 1000
    },
    maxUploadRate: rateOption(values['max-upload-rate']),
    log: (msg: string) => { out.warn(msg) }
  }
  const { Peer } = await import('../peer.js')
  let peer: Peer
  if (kind === 'seed') {
    if (options.trackers.length === 0 && options.bootstrap.length === 0) out.warn('no --tracker and no --bootstrap: only peers that find this one on their own (DHT, peer exchange) will')
    peer = await Peer.seed(positionals[0], { ...options, manifestPath: values.manifest, skipVerify: values['skip-verify'] })
  } else {
    if (values.out == null) throw new UsageError('get needs --out <dir>')
    peer = await Peer.get(positionals[0], values.out, options)
  }

  const done = Promise.withResolvers<number>()
  peer.addEventListener('manifest', (evt) => {
    if (kind === 'get') out.event({ event: 'manifest', cid: evt.detail.cid, name: evt.detail.manifest.name, bytes: evt.detail.manifest.length, pieceLength: evt.detail.manifest.pieceLength }, safeText`manifest: ${evt.detail.manifest.name} (${formatBytes(evt.detail.manifest.length)})`)
  })
  peer.addEventListener('peer:connect', (evt) => {
    out.event({ event: 'peer', peerId: evt.detail.peerId, source: evt.detail.source })
  })
  peer.addEventListener('complete', (evt) => {
    report()
    out.event({ event: 'complete', cid: evt.detail.cid, path: evt.detail.path, bytes: evt.detail.bytes }, safeText`complete: ${evt.detail.path} (${formatBytes(evt.detail.bytes)}, every piece verified)`)
    if (kind === 'get' && values.seed !== true) done.resolve(0)
    else if (kind === 'get') out.line('seeding until Ctrl-C')
  })
  peer.addEventListener('error', (evt) => {
    out.warn(`bitswarm: ${evt.detail.message}`)
    done.resolve(1)
  })
  const report = (): void => {
    const e = statsEvent(peer.cid.toString(), peer.phase, peer.stats(), peer.discoveryStatus())
    if (out.json) out.event(e as unknown as { event: string } & Record<string, unknown>)
    else out.status(`${progressBar(e.progress)} ${statsLine(e)}`)
  }
  await peer.start()
  if (kind === 'seed') {
    out.event({ event: 'seeding', cid: peer.cid.toString(), manifest: peer.manifestPath, peerId: peer.peerId, multiaddrs: peer.multiaddrs },
      [safeText`seeding ${peer.manifest?.name ?? ''} (${formatBytes(peer.manifest?.length ?? 0)})`, safeText`  cid:      ${peer.cid.toString()}`, safeText`  manifest: ${peer.manifestPath ?? ''}`, safeText`  peer:     ${peer.peerId}`, ...peer.multiaddrs.map(a => safeText`  listen:   ${a}`)].join('\n'))
  } else {
    out.event({ event: 'started', cid: peer.cid.toString(), peerId: peer.peerId, multiaddrs: peer.multiaddrs },
      [safeText`fetching ${peer.cid.toString()}`, safeText`  peer:     ${peer.peerId}`, ...peer.multiaddrs.map(a => safeText`  listen:   ${a}`)].join('\n'))
  }
  const timer = setInterval(report, statsInterval * 1000)
  const signal = untilSignal().then(() => 0)
  const code = await Promise.race([done.promise, signal])
  clearInterval(timer)
  await peer.stop()
  process.exitCode = code
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
async function untilSignal (): Promise<void> {
  await new Promise<void>((resolve) => {
    const onSignal = (): void => {
      process.once('SIGINT', () => process.exit(130))
      process.once('SIGTERM', () => process.exit(143))
      resolve()
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  const json = rest.includes('--json')
  const out = new Output(json)
  try {
    switch (command) {
      case 'tracker': await tracker(rest, out); break
      case 'seed': await peerCommand('seed', rest, out); break
      case 'get': await peerCommand('get', rest, out); break
      case 'demo': await (await import('./demo.js')).runDemo(rest, out); break
      case undefined: case '-h': case '--help': case 'help':
        process.stdout.write(USAGE)
        break
      default:
        throw new UsageError(`unknown command ${command} (try bitswarm --help)`)
    }
  } catch (err) {
    const e = err as Error
    // one clear line on stderr, non-zero exit
    const usage = e.name === 'UsageError' || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true
    // the message may quote a manifest's name or a path (newlines and all): escaped, it stays
    // one line that says what it means
    process.stderr.write(`bitswarm: ${escapeText(inCliWords(e))}\n`)
    process.exitCode = usage ? 2 : 1
  }
  // libp2p may leave handles (sockets closing) that keep the process alive; the work is done,
  // so exit as soon as what we wrote has left (process.exit() can cut off writes to a pipe)
  const exit = (): never => process.exit()
  process.stdout.write('', () => { process.stderr.write('', exit) })
  setTimeout(exit, 1000).unref()
}

await main(process.argv.slice(2))

/** The library's typed errors, told in the command line's words (its flags). */
function inCliWords (err: Error): string {
  if (err instanceof NoSwarmSourcesError) return 'no --tracker, no --bootstrap and no peers remembered from earlier runs: nowhere to look for the swarm'
  if (err instanceof OutputDirError) return `cannot write to --out ${err.dir}: ${err.reason}`
  return err.message
}
