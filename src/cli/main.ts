// The command line (bin.ts runs it, bundled into dist/bitswarm.cjs).
// libp2p v3 needs Promise.withResolvers, which Node 20 lacks: load the polyfill first.
import '../polyfill.js'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { PrivateKey } from '@libp2p/interface'
import type { Peer } from '../peer.js'
import { NoSwarmSourcesError, OutputDirError, UsageError } from './errors.js'
import { checkAnnounce, checkBootstrap, checkUrls, portOption, positiveNumber, rateOption, wholeOption } from './options.js'
import { statsEvent, statusLine } from './reporter.js'
import { peersTable } from './peers-table.js'
import { shortId } from '../session/session.js'
import { addressClassOption, dhtOption } from './dht-option.js'
import { formatBytes, formatDuration } from './format.js'
import { formatLink, InvalidLinkError, MAX_LINK_PEERS } from '../link/link.js'
import type { Manifest } from '../manifest/manifest.js'
import type { LookupOptions } from './manifest-commands.js'
import { EmptySelectionError, InvalidGlobError } from '../manifest/select.js'
import { parseDuration, parseOption, parseRatio } from './units.js'
import { escapeText, Output, safeText } from './output.js'
import type { RelayLimits } from '../net/relay.js'
import type { TrackerLogEvent } from '../../tracker/server.js'

const USAGE = `bitswarm — a peer-to-peer file swarm on libp2p

Usage:
  bitswarm tracker [--host 127.0.0.1] [--port 8000] [--relay [--relay-port <port>]]
               [--interval <s>] [--min-interval <s>] [--max-peers-per-swarm <n>]
               [--max-swarms <n>] [--max-peers <n>] [--allow <cid>]... [--allow-file <file>]
               [--store memory | redis://HOST:PORT[/DB]] [--json]
  bitswarm seed <file | folder> [--tracker <announce-url>]... [--bootstrap <multiaddr>]...
               [--listen <multiaddr>]... [--announce <multiaddr>]... [--identity <file>]
               [--relay <multiaddr>]... [--upnp] [--dht auto|lan|wan|off] [--peers]
               [--ui [HOST:]PORT] [--json]
  bitswarm get <cid | manifest file | link> --out <dir> [--select <glob>]...
               [--tracker <announce-url>]... [--bootstrap <multiaddr>]...
               [--listen <multiaddr>]... [--announce <multiaddr>]... [--identity <file>]
               [--relay <multiaddr>]... [--upnp] [--dht auto|lan|wan|off] [--seed] [--peers]
               [--ui [HOST:]PORT] [--json]
  bitswarm create <file | folder> [--manifest <path>] [--tracker <announce-url>]...
               [--piece-length <size>] [--json]
  bitswarm info <manifest file | cid | link> [--tracker <announce-url>]... [--identity <file>]
               [--json]
  bitswarm relay [--listen <multiaddr>]... [--announce <multiaddr>]... [--identity <file>]
               [--max-reservations <n>] [--max-relayed <size>] [--max-relayed-time <duration>]
               [--max-relayed-connections <n>] [--json]
  bitswarm demo [--size <MiB>] [--leechers <n>] [--ui [[HOST:]PORT]] [--max-upload-rate <rate>]

Options:
  --tracker <url>          announce URL of a tracker (repeatable)
  --bootstrap <multiaddr>  a peer (with /p2p/<id>) to join the DHT through (repeatable)
  --dht <mode>             the Kademlia DHTs that provide and look up the manifest: auto
                           (default: a LAN one and an internet one side by side), lan, wan,
                           or off (trackers, bootstrap peers and peer exchange only)
  --no-dht                 the same as --dht off
  --state-dir <dir>        where to remember peers between runs
                           (default $XDG_STATE_HOME/bitswarm or ~/.local/state/bitswarm)
  --listen <multiaddr>     address to listen on (repeatable; default /ip4/0.0.0.0/tcp/0 and
                           /ip6/::/tcp/0, IPv6 skipped where the host has none)
  --announce <multiaddr>   an address to advertise besides the listen addresses, without
                           /p2p/ (repeatable; e.g. a port forwarded on the router:
                           /ip4/203.0.113.7/tcp/4001 with --listen /ip4/0.0.0.0/tcp/4001)
  --identity <file>        the peer's private key: loaded if the file exists, else a new one
                           is written there (mode 0600), so the peer id stays the same from
                           run to run (default: a new peer id each run)
  --relay <multiaddr>      a relay (with /p2p/<id>) to hold a reservation on, so that peers
                           behind other NATs reach this one through it (repeatable; run one
                           with \`bitswarm relay\` or \`bitswarm tracker --relay\`)
  --upnp                   (seed, get) ask the home router (UPnP) to forward a port to this
                           peer and announce it: the first /ip4/…/tcp/<port> of --listen, or a
                           free one in 49152-65535 (a router that does not answer within a
                           few seconds: one warning, and the peer goes on without a mapping)
  --relay-port <port>      (tracker --relay) the relay's TCP port on --host (default: any free)
  --interval <s>           (tracker) seconds between announces, told to clients (default 30;
                           a silent peer is dropped after twice that)
  --min-interval <s>       (tracker) minimum seconds between announces, told to clients
                           (default 5; at most --interval)
  --max-peers-per-swarm <n> (tracker) peers in one swarm (default 2000; past it a new peer
                           gets 503, unless a host holding more entries yields one)
  --max-swarms <n>         (tracker) swarms in all (default 10000; past it 503)
  --max-peers <n>          (tracker) peers in all swarms together (default 50000; past it 503)
  --allow <cid>            (tracker) track only this manifest (repeatable; with --allow-file,
                           both lists); any other gets 403 "manifest not tracked here"
  --allow-file <file>      (tracker) track only the manifests listed there, one CID a line
                           (blank lines and # comments ignored); reread on SIGHUP (a bad line
                           is then skipped with a warning, an unreadable file keeps the old list)
  --store <url>            (tracker) where the swarms are kept: memory (default) or
                           redis://HOST:PORT[/DB]: trackers on one Redis serve one set of
                           swarms, a restarted one forgets nothing, the limits above hold for
                           all together; while Redis is down, announces get 503
  --max-reservations <n>   (relay) peers holding a slot at once (default 128)
  --max-relayed <size>     (relay) bytes one relayed connection may carry before the relay
                           closes it (default 1GiB; under 16MiB peers use it to signal only)
  --max-relayed-time <duration> (relay) how long a relayed connection may last (default 1h)
  --max-relayed-connections <n> (relay) relayed connections being opened at once (default 64)
  --out <dir>              where \`get\` writes the file (a folder goes to <dir>/<name>/)
  --select <glob>          (get) only the folder's files whose path matches (repeatable;
                           '/'-separated, * within a name, ** any folders, ? one character)
  --seed                   after \`get\` completes, keep seeding until SIGINT/SIGTERM
  --seed-ratio <r>         stop seeding once uploaded / downloaded bytes reach r (e.g. 1.5)
  --seed-time <duration>   stop seeding after this long (e.g. 30m, 1h30m, 45s)
  --timeout <duration>     (get) give up when no piece has arrived for this long (exit 1;
                           a rerun resumes)
  --stats-interval <s>     seconds between stats lines (default 1)
  --peers                  (seed, get) a table of the connected peers under the stats line
                           (flags: D/d download, U/u upload, K, ?, O optimistic, S snubbed)
  --ui [HOST:]PORT         (seed, get) a live page of the swarm in the browser at
                           http://HOST:PORT/ (piece map, peers, rates; read-only; HOST
                           defaults to 127.0.0.1, PORT 0 picks a free one; printed as \`ui\`);
                           \`demo --ui\` shows every peer of the demo side by side on one page
  --json                   one JSON object per line on stdout (NDJSON)
  --manifest <path>        (seed) where to write the manifest (default <file>.bitswarm)
  --skip-verify            (seed) trust the file against its existing manifest without hashing it
  --max-upload-rate <rate> cap on upload, all peers together (e.g. 20MiB, 512KiB; default none)
  --max-download-rate <rate> cap on download, all peers together (default none)
  --rechoke-interval <s>   seconds between choking rounds (default 10)
  --optimistic-interval <s> seconds between optimistic unchoke rotations (default 30)
  -h, --help               this help
`

const PEER_OPTIONS = {
  tracker: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'state-dir': { type: 'string' },
  'no-dht': { type: 'boolean' },
  dht: { type: 'string' },
  listen: { type: 'string', multiple: true },
  announce: { type: 'string', multiple: true },
  identity: { type: 'string' },
  relay: { type: 'string', multiple: true },
  upnp: { type: 'boolean' },
  out: { type: 'string' },
  seed: { type: 'boolean' },
  json: { type: 'boolean' },
  manifest: { type: 'string' },
  'stats-interval': { type: 'string' },
  peers: { type: 'boolean' },
  ui: { type: 'string' },
  'rechoke-interval': { type: 'string' },
  'optimistic-interval': { type: 'string' },
  'max-upload-rate': { type: 'string' },
  'max-download-rate': { type: 'string' },
  select: { type: 'string', multiple: true },
  'seed-ratio': { type: 'string' },
  'seed-time': { type: 'string' },
  timeout: { type: 'string' },
  'skip-verify': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} satisfies ParseArgsConfig['options']

const RELAY_OPTIONS = {
  listen: { type: 'string', multiple: true },
  announce: { type: 'string', multiple: true },
  identity: { type: 'string' },
  'max-reservations': { type: 'string' },
  'max-relayed': { type: 'string' },
  'max-relayed-time': { type: 'string' },
  'max-relayed-connections': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} satisfies ParseArgsConfig['options']

type RelayValues = ReturnType<typeof parseArgs<{ options: typeof RELAY_OPTIONS, strict: true }>>['values']

/** A relay's limits from the command line (see net/relay.ts for the defaults). */
function relayLimitsOf (values: Partial<RelayValues>): RelayLimits {
  const time = parseOption('max-relayed-time', values['max-relayed-time'], parseDuration)
  if (time === 0) throw new UsageError('--max-relayed-time must be more than 0')
  return {
    maxReservations: wholeOption(values['max-reservations'], 'max-reservations'),
    maxBytesPerConnection: rateOption(values['max-relayed'], 'max-relayed'),
    maxSecondsPerConnection: time == null ? undefined : Math.max(1, Math.round(time / 1000)),
    maxConnections: wholeOption(values['max-relayed-connections'], 'max-relayed-connections')
  }
}

/** `bitswarm relay`: a circuit relay v2 node that peers behind NATs reserve a slot on (net/relay.ts). */
async function relayCommand (argv: string[], out: Output): Promise<void> {
  const { values } = parseArgs({ args: argv, options: RELAY_OPTIONS, strict: true })
  if (values.help === true) { out.line(USAGE); return }
  const limits = relayLimitsOf(values)
  const announce = checkAnnounce(values.announce ?? [])
  const privateKey = await identity(values.identity)
  const { startRelay } = await import('../net/relay.js')
  const { fullAddrs } = await import('../node.js')
  const node = await startRelay({ listen: values.listen, announce, privateKey, limits })
  // before the event: a script that stops us as soon as it reads it gets a clean stop
  const signal = untilSignal()
  const multiaddrs = fullAddrs(node)
  out.event({ event: 'relay', peerId: node.peerId.toString(), multiaddrs },
    [safeText`relay ${node.peerId.toString()}`, ...multiaddrs.map(a => safeText`  listen:   ${a}`)].join('\n'))
  await signal
  await node.stop()
}

async function tracker (argv: string[], out: Output): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      relay: { type: 'boolean' },
      'relay-port': { type: 'string' },
      interval: { type: 'string' },
      'min-interval': { type: 'string' },
      'max-peers-per-swarm': { type: 'string' },
      'max-swarms': { type: 'string' },
      'max-peers': { type: 'string' },
      allow: { type: 'string', multiple: true },
      'allow-file': { type: 'string' },
      store: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true
  })
  if (values.help === true) { out.line(USAGE); return }
  const { interval, minInterval, ...storeLimits } = trackerLimitsOf(values)
  const storeUrl = values.store ?? 'memory'
  if (storeUrl !== 'memory' && !storeUrl.startsWith('redis://')) throw new UsageError(`--store must be memory or redis://HOST:PORT[/DB], got ${storeUrl}`)
  const port = portOption(values.port, 'port', 8000)
  const relayPort = portOption(values['relay-port'], 'relay-port', 0)
  if (values.relay !== true && values['relay-port'] != null) throw new UsageError('--relay-port needs --relay')
  const host = values.host ?? '127.0.0.1'
  // diagnostics and periodic swarm counts go to stderr: with --json, stdout is NDJSON only
  const log = (line: string): void => { out.warn(line) }
  let allow: import('../../tracker/allow.js').AllowList | undefined
  if (values.allow != null || values['allow-file'] != null) {
    const { AllowList, AllowListError } = await import('../../tracker/allow.js')
    try {
      allow = await AllowList.load({ cids: values.allow, file: values['allow-file'], log })
    } catch (err) {
      throw err instanceof AllowListError ? new UsageError(err.message) : err
    }
    if (allow.size === 0) log('tracker: the allow list is empty: every announce and scrape gets 403 until it is reloaded')
  }
  // a relay beside the tracker, on the same host: peers behind NATs reserve a slot on it, and
  // the tracker hands out their addresses through it (and its own address to every peer)
  let relay: Awaited<ReturnType<typeof import('../net/relay.js')['startRelay']>> | undefined
  let relayAddrs: string[] = []
  if (values.relay === true) {
    const { startRelay } = await import('../net/relay.js')
    const { fullAddrs } = await import('../node.js')
    const ip = host.includes(':') ? `/ip6/${host}` : `/ip4/${host}`
    relay = await startRelay({ listen: [`${ip}/tcp/${relayPort}`] })
    relayAddrs = fullAddrs(relay)
  }
  // Several instances on one Redis serve one set of swarms, and a restart forgets nothing. The
  // limits then go to the store: they hold for all instances together.
  let store: import('../../tracker/redis-store.js').RedisPeerStore | undefined
  if (storeUrl !== 'memory') {
    const { RedisPeerStore } = await import('../../tracker/redis-store.js')
    const { StoreConfigError } = await import('../../tracker/store.js')
    try {
      store = new RedisPeerStore({ url: storeUrl, peerTtl: 2 * (interval ?? 30), ...storeLimits, log })
    } catch (err) {
      throw err instanceof StoreConfigError ? new UsageError(`--store: ${err.message}`) : err
    }
    try {
      await store.start()
    } catch (err) {
      await relay?.stop()
      throw new Error(`cannot use the store ${redactUrl(storeUrl)}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  // imported here so that `bitswarm tracker` does not load libp2p (unless --relay)
  const { createTrackerServer } = await import('../../tracker/server.js')
  const server = createTrackerServer({
    host,
    port,
    relays: relayAddrs,
    interval,
    minInterval,
    ...(store != null ? { store } : storeLimits),
    allow,
    log,
    // with --json the periodic swarm counts and rejected requests are events on stdout (rejected:
    // at most one per kind per interval); without, text lines on stderr through `log`
    ...(out.json ? { onEvent: (e: TrackerLogEvent) => { out.event(e) } } : {})
  })
  await server.start()
  if (store != null) log(`tracker: swarms kept in Redis at ${store.address}`)
  // before the events: a script that stops us as soon as it reads them gets a clean stop
  const signal = untilSignal()
  // the operator edited the file: `kill -HUP <pid>` rereads it (a broken file keeps the old list)
  const onHangup = (): void => { void allow?.reload() }
  if (allow?.file != null) process.on('SIGHUP', onHangup)
  // the server logs its own "listening" line for people; this event is for scripts
  out.event({ event: 'listening', announce: server.announceUrl, store: redactUrl(storeUrl), ...(relay != null ? { relay: relayAddrs } : {}) })
  if (relay != null) out.event({ event: 'relay', peerId: relay.peerId.toString(), multiaddrs: relayAddrs }, relayAddrs.map(a => safeText`relay: ${a}`).join('\n'))
  await signal
  process.off('SIGHUP', onHangup)
  await server.stop()
  await store?.close()
  await relay?.stop()
}

/** A store URL fit for logs: a password in it is replaced by *** */
function redactUrl (text: string): string {
  try {
    const url = new URL(text)
    if (url.password !== '') url.password = '***'
    return url.toString()
  } catch {
    return text
  }
}

/** `tracker --interval …`: the announce intervals and the memory store's limits, checked here so a mistake is a usage error. */
function trackerLimitsOf (values: Record<string, unknown>): { interval?: number, minInterval?: number, maxPeersPerManifest?: number, maxManifests?: number, maxPeersTotal?: number } {
  const text = (flag: string): string | undefined => values[flag] as string | undefined
  const seconds = (flag: string, zeroOk: boolean): number | undefined => {
    const t = text(flag)
    if (t == null) return undefined
    const n = t.trim() === '' ? NaN : Number(t)
    if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) throw new UsageError(`--${flag} must be a number of seconds ${zeroOk ? '>= 0' : '> 0'}, got ${t}`)
    return n
  }
  const whole = (flag: string): number | undefined => wholeOption(text(flag), flag)
  const interval = seconds('interval', false)
  const minInterval = seconds('min-interval', true)
  // the defaults are 30 s and 5 s
  if ((minInterval ?? 5) > (interval ?? 30)) throw new UsageError(`--min-interval (${minInterval ?? 5}) must not exceed --interval (${interval ?? 30})`)
  return {
    interval,
    minInterval,
    maxPeersPerManifest: whole('max-peers-per-swarm'),
    maxManifests: whole('max-swarms'),
    maxPeersTotal: whole('max-peers')
  }
}

async function peerCommand (kind: 'seed' | 'get', argv: string[], out: Output): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: PEER_OPTIONS, allowPositionals: true, strict: true })
  if (values.help === true) { out.line(USAGE); return }
  if (positionals.length !== 1) throw new UsageError(kind === 'seed' ? 'seed takes one <file | folder>' : 'get takes one <cid | manifest file | link>')
  if (kind === 'seed' && values.select != null) throw new UsageError('--select is for get')
  if (kind === 'seed' && values.timeout != null) throw new UsageError('--timeout is for get')
  const seedRatio = parseOption('seed-ratio', values['seed-ratio'], parseRatio)
  const seedTime = parseOption('seed-time', values['seed-time'], parseDuration)
  const timeout = parseOption('timeout', values.timeout, parseDuration)
  if (timeout === 0) throw new UsageError('--timeout must be more than 0')
  const statsInterval = positiveNumber(values['stats-interval'], 'stats-interval', 1)
  const uiAddress = values.ui == null ? undefined : (await import('./ui-option.js')).parseUiAddress(values.ui)
  const options = {
    listen: values.listen,
    announce: checkAnnounce(values.announce ?? []),
    relays: checkBootstrap(values.relay ?? [], 'relay'),
    trackers: checkUrls(values.tracker ?? []),
    bootstrap: checkBootstrap(values.bootstrap ?? []),
    stateDir: values['state-dir'],
    dht: dhtOption(values.dht, values['no-dht']),
    // BITSWARM_PUBLIC_RANGES, for tests only (see dht-option.ts)
    addressClass: addressClassOption(),
    choker: {
      rechokeInterval: positiveNumber(values['rechoke-interval'], 'rechoke-interval', 10) * 1000,
      optimisticInterval: positiveNumber(values['optimistic-interval'], 'optimistic-interval', 30) * 1000
    },
    maxUploadRate: rateOption(values['max-upload-rate']),
    maxDownloadRate: rateOption(values['max-download-rate'], 'max-download-rate'),
    log: (msg: string) => { out.warn(msg) }
  }
  // before a port is mapped for nothing
  if (kind === 'get' && values.out == null) throw new UsageError('get needs --out <dir>')
  // --upnp: the router forwards a port before the node listens on it (src/cli/upnp-option.ts);
  // the mapping is deleted when the peer stops, or fails to start
  const upnp = values.upnp === true ? await (await import('./upnp-option.js')).upnpListen(options.listen, out, options.addressClass) : undefined
  if (upnp != null) {
    options.listen = upnp.listen
    options.announce = [...options.announce, ...upnp.announce]
  }
  const { Peer } = await import('../peer.js')
  let peer: Peer
  try {
    if (kind === 'seed') {
      if (options.trackers.length === 0 && options.bootstrap.length === 0) out.warn('no --tracker and no --bootstrap: only peers that find this one on their own (DHT, peer exchange) will')
      peer = await Peer.seed(positionals[0], { ...options, privateKey: await identity(values.identity), manifestPath: values.manifest, skipVerify: values['skip-verify'] })
    } else {
      if (values.out == null) throw new UsageError('get needs --out <dir>')
      peer = await Peer.get(positionals[0], values.out, { ...options, privateKey: await identity(values.identity), select: values.select })
    }
  } catch (err) {
    await upnp?.unmap()
    throw err
  }

  const done = Promise.withResolvers<number>()
  // what the peer tells while it starts (the manifest, the first peers, the `complete` of a
  // download already on disk) waits for the header (`seeding`, `started`), which needs the
  // started node's addresses: nothing is printed before the header
  let headed = false
  const held: Array<() => void> = []
  const afterHeader = (print: () => void): void => { if (headed) print(); else held.push(print) }
  // our own stop closes every session: those are not peers leaving
  let stopping = false
  peer.addEventListener('manifest', (evt) => {
    const m = evt.detail.manifest
    const files = m.version === 2 ? { files: m.files.length } : {}
    if (kind === 'get') afterHeader(() => { out.event({ event: 'manifest', cid: evt.detail.cid, name: m.name, bytes: m.length, pieceLength: m.pieceLength, ...files }, safeText`manifest: ${m.name} (${formatBytes(m.length)}${m.version === 2 ? `, ${m.files.length} files` : ''})`) })
  })
  peer.addEventListener('peer:connect', (evt) => {
    afterHeader(() => { out.event({ event: 'peer', peerId: evt.detail.peerId, source: evt.detail.source, via: evt.detail.via }) })
  })
  peer.addEventListener('peer:disconnect', (evt) => {
    if (stopping) return
    const { peerId } = evt.detail
    // no reason: the stream ended cleanly (the peer left, or we closed a session we had no use for)
    const reason = evt.detail.reason ?? 'connection closed'
    afterHeader(() => { out.event({ event: 'peer:disconnect', peerId, reason }, safeText`peer ${shortId(peerId)} left: ${reason}`) })
  })
  let seedingSince: number | undefined
  peer.addEventListener('complete', (evt) => { afterHeader(() => {
    report()
    out.event({ event: 'complete', cid: evt.detail.cid, path: evt.detail.path, bytes: evt.detail.bytes }, safeText`complete: ${evt.detail.path} (${formatBytes(evt.detail.bytes)}, every piece verified)`)
    if (kind === 'get' && values.seed !== true) done.resolve(0)
    else if (kind === 'get') {
      seedingSince = Date.now()
      // words for people only: with --json, stdout carries nothing but events
      if (!out.json) out.line(seedRatio == null && seedTime == null ? 'seeding until Ctrl-C' : 'seeding until Ctrl-C or the --seed-ratio / --seed-time limit')
    }
  }) })
  // --seed-ratio and --seed-time end seeding; --timeout ends a download that stalls. Checked on
  // a 1 s tick rather than one long timer: a duration may exceed setTimeout's ~24.8 days
  let lastHave = -1
  let lastProgressAt = Date.now()
  const limits = setInterval(() => {
    const s = peer.stats()
    if (timeout != null && kind === 'get' && seedingSince == null) {
      if (s.have !== lastHave) { lastHave = s.have; lastProgressAt = Date.now() }
      if (Date.now() - lastProgressAt >= timeout) {
        out.warn(`bitswarm: no piece arrived for ${formatDuration(timeout / 1000)}: giving up (run the same command again to resume)`)
        out.event({ event: 'timeout', cid: peer.cid.toString(), have: s.have, pieces: s.pieces })
        done.resolve(1)
      }
    }
    if (seedingSince == null) return
    // the stats' ratio: uploaded ÷ downloaded, or ÷ the bytes we hold when we downloaded nothing
    // (a seed, or a `get --seed` of a file already on disk, which must not stop at its first upload)
    const ratio = s.ratio
    const seconds = (Date.now() - seedingSince) / 1000
    const reason = seedRatio != null && ratio >= seedRatio ? 'ratio' : seedTime != null && seconds * 1000 >= seedTime ? 'time' : undefined
    if (reason == null) return
    out.event({ event: 'seeded', cid: peer.cid.toString(), reason, ratio: Number(ratio.toFixed(3)), seconds: Math.round(seconds) },
      `seeded: ${reason === 'ratio' ? `ratio ${ratio.toFixed(2)} reached` : `${formatDuration(seconds)} of seeding`}; stopping`)
    done.resolve(0)
  }, 1000)
  limits.unref()
  peer.addEventListener('error', (evt) => {
    out.warn(`bitswarm: ${evt.detail.message}`)
    // a selection that matches nothing is known only once the manifest is: still a usage error
    done.resolve(evt.detail instanceof EmptySelectionError || evt.detail.name === 'UsageError' ? 2 : 1)
  })
  // `elapsed` counts from here: the peer starts
  const startedAt = Date.now()
  // every --stats-interval: the stats, and the peers (a `peers` event; with --peers, a table
  // under the stats line); on a terminal the line fits its width
  const report = (): void => {
    const e = statsEvent(peer.cid.toString(), peer.phase, peer.stats(), peer.discoveryStatus(), peer.reachability, (Date.now() - startedAt) / 1000)
    if (out.json) {
      out.event(e as unknown as { event: string } & Record<string, unknown>)
      out.event({ event: 'peers', cid: e.cid, peers: peer.peerInfos() })
      return
    }
    const rows = out.rows
    const table = values.peers === true ? peersTable(peer.peerInfos(), { width: out.columns, maxLines: rows == null ? undefined : Math.max(2, rows - 2) }) : []
    out.status(statusLine(e, out.columns), table)
  }
  await peer.start().catch(async (err: unknown) => {
    await upnp?.unmap()
    throw err
  })
  // before the first event: a script that sends SIGINT as soon as it reads `seeding` or
  // `started` must meet the handler (stop, announce stopped, exit 0), not Node's default (death)
  const signal = untilSignal().then(() => 0)
  if (kind === 'seed') {
    const m = peer.manifest
    seedingSince = Date.now()
    const link = formatLink({ cid: peer.cid, name: m?.name, trackers: options.trackers, peers: linkPeers(peer.multiaddrs) })
    const files = m?.version === 2 ? { files: m.files.length } : {}
    out.event({ event: 'seeding', cid: peer.cid.toString(), manifest: peer.manifestPath, peerId: peer.peerId, multiaddrs: peer.multiaddrs, link, ...files },
      [safeText`seeding ${m?.name ?? ''} (${formatBytes(m?.length ?? 0)}${m?.version === 2 ? `, ${m.files.length} files` : ''})`, safeText`  cid:      ${peer.cid.toString()}`, safeText`  manifest: ${peer.manifestPath ?? ''}`, safeText`  link:     ${link}`, safeText`  peer:     ${peer.peerId}`, ...peer.multiaddrs.map(a => safeText`  listen:   ${a}`)].join('\n'))
  } else {
    out.event({ event: 'started', cid: peer.cid.toString(), peerId: peer.peerId, multiaddrs: peer.multiaddrs },
      [safeText`fetching ${peer.cid.toString()}`, safeText`  peer:     ${peer.peerId}`, ...peer.multiaddrs.map(a => safeText`  listen:   ${a}`)].join('\n'))
  }
  // the header is out: what came while the peer started follows it, in the order it came
  headed = true
  for (const print of held.splice(0)) print()
  // --ui: this peer's live page, once it runs (src/cli/ui-option.ts)
  const ui = uiAddress == null ? undefined : await (await import('./ui-option.js')).startPeerUi(uiAddress, kind, peer, out, statsInterval).catch(async (err: unknown) => {
    await peer.stop()
    await upnp?.unmap()
    throw err
  })
  const timer = setInterval(report, statsInterval * 1000)
  const code = await Promise.race([done.promise, signal])
  stopping = true
  clearInterval(timer)
  clearInterval(limits)
  await ui?.stop()
  await peer.stop()
  await upnp?.unmap()
  process.exitCode = code
}

/** The key of `--identity <file>` (loaded, or made and written), after every usage check. */
async function identity (file: string | undefined): Promise<PrivateKey | undefined> {
  if (file == null) return undefined
  const { loadOrCreateIdentity } = await import('../net/identity.js')
  return await loadOrCreateIdentity(file)
}

/**
 * The addresses a share link carries: a few, the ones other hosts can reach first (loopback
 * last: it only helps on this machine).
 */
function linkPeers (addrs: string[]): string[] {
  const loopback = (a: string): boolean => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')
  return [...addrs.filter(a => !loopback(a)), ...addrs.filter(loopback)].slice(0, Math.min(4, MAX_LINK_PEERS))
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
      case 'create': await (await import('./manifest-commands.js')).createCommand(rest, out); break
      case 'info': await (await import('./manifest-commands.js')).infoCommand(rest, out, lookupManifest); break
      case 'relay': await relayCommand(rest, out); break
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
    const usage = e.name === 'UsageError' || e instanceof InvalidLinkError || e instanceof InvalidGlobError || e instanceof EmptySelectionError ||
      (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true
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

// (not a top-level await: the bundle is CommonJS, see bin.ts; main() catches its own errors)
void main(process.argv.slice(2))

/** `info` of a CID or a link: the manifest, fetched from the swarm as `get` would. */
async function lookupManifest (cid: string, where: LookupOptions): Promise<Manifest> {
  const { fetchManifestOnly } = await import('../peer.js')
  return await fetchManifestOnly(cid, { trackers: where.trackers, peers: where.peers }, { listen: where.listen, dht: where.dht, addressClass: addressClassOption(), stateDir: where.stateDir, timeout: where.timeout, privateKey: await identity(where.identity) })
}

/** The library's typed errors, told in the command line's words (its flags). */
function inCliWords (err: Error): string {
  if (err instanceof NoSwarmSourcesError) return 'no --tracker, no --bootstrap and no peers remembered from earlier runs: nowhere to look for the swarm'
  if (err instanceof OutputDirError) return `cannot write to --out ${err.dir}: ${err.reason}`
  return err.message
}
