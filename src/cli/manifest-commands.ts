// `bitswarm create` and `bitswarm info`: a manifest made or shown without joining a swarm (info
// of a CID or a link asks the swarm for the manifest, as `get` does, and stops there).
import { stat } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { formatLink, looksLikeLink, parseLink } from '../link/link.js'
import { isPowerOfTwo, manifestLayout, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, parseCid, type Manifest } from '../manifest/manifest.js'
import { createManifest, readManifestFile, writeManifestFile } from '../storage/manifest-file.js'
import { parseRate } from '../throttle.js'
import { UsageError } from './errors.js'
import { formatBytes } from './format.js'
import { type Output, safeText } from './output.js'
import { checkBootstrap, checkUrls } from './options.js'
import { dhtOption } from './dht-option.js'
import type { DhtMode } from '../node.js'
import { parseDuration, parseOption } from './units.js'

export const CREATE_USAGE = '  bitswarm create <file | folder> [--manifest <path>] [--tracker <url>]... [--piece-length <size>] [--json]'
export const INFO_USAGE = '  bitswarm info <manifest file | cid | link> [--tracker <url>]... [--bootstrap <multiaddr>]... [--listen <multiaddr>]... [--identity <file>] [--dht auto|lan|wan|off] [--no-dht] [--state-dir <dir>] [--timeout <duration>] [--json]'

/** A piece length from the command line: bytes or a size (256KiB), a power of two in range. */
function pieceLengthOption (value: string | undefined): number | undefined {
  if (value == null) return undefined
  let n: number
  try {
    n = parseRate(value)
  } catch (err) {
    throw new UsageError(`--piece-length: ${(err as Error).message}`)
  }
  if (!isPowerOfTwo(n) || n < MIN_PIECE_LENGTH || n > MAX_PIECE_LENGTH) {
    throw new UsageError(`--piece-length must be a power of two from ${formatBytes(MIN_PIECE_LENGTH)} to ${formatBytes(MAX_PIECE_LENGTH)}, got ${value}`)
  }
  return n
}

/** What a manifest holds, for `created` and `info` events alike (fields added, never renamed). */
export function manifestSummary (m: Manifest): Record<string, unknown> {
  const layout = manifestLayout(m)
  return {
    name: m.name,
    bytes: m.length,
    pieceLength: m.pieceLength,
    pieces: layout.pieceCount,
    ...(m.version === 2 ? { files: m.files.length, folders: m.folders.length } : {})
  }
}

function sizeLine (m: Manifest): string {
  const files = m.version === 2 ? `, ${m.files.length} file${m.files.length === 1 ? '' : 's'}` : ''
  return `${formatBytes(m.length)}${files}`
}

export async function createCommand (argv: string[], out: Output): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { manifest: { type: 'string' }, tracker: { type: 'string', multiple: true }, 'piece-length': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true
  })
  if (values.help === true) { out.line(`Usage:\n${CREATE_USAGE}`); return }
  if (positionals.length !== 1) throw new UsageError('create takes one <file | folder>')
  const trackers = checkUrls(values.tracker ?? [])
  const path = resolve(positionals[0])
  const { manifest, bytes, cid } = await createManifest(path, { pieceLength: pieceLengthOption(values['piece-length']) })
  // beside the file or folder, never inside it: a manifest inside a folder would change the folder
  const manifestPath = resolve(values.manifest ?? `${path}.bitswarm`)
  await writeManifestFile(manifestPath, bytes)
  const link = formatLink({ cid, name: manifest.name, trackers, peers: [] })
  out.event({ event: 'created', cid: cid.toString(), manifest: manifestPath, link, ...manifestSummary(manifest) },
    [safeText`created ${manifest.name} (${sizeLine(manifest)})`, safeText`  cid:      ${cid.toString()}`, safeText`  manifest: ${manifestPath}`, safeText`  link:     ${link}`].join('\n'))
}

/** Fetches a manifest by CID through the swarm (trackers, peers, DHT), as `get` does. */
export type ManifestLookup = (cid: string, where: LookupOptions) => Promise<Manifest>

export interface LookupOptions {
  trackers: string[]
  /** multiaddrs with /p2p/<id>: the link's peers and --bootstrap */
  peers: string[]
  listen?: string[]
  /** `--identity <file>`: the key to look up the manifest as (loaded, or made, only for a lookup) */
  identity?: string
  /** `--dht` (`--no-dht` is off) */
  dht: DhtMode
  stateDir?: string
  /** ms */
  timeout?: number
}

export async function infoCommand (argv: string[], out: Output, lookup: ManifestLookup): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      tracker: { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      listen: { type: 'string', multiple: true },
      identity: { type: 'string' },
      'no-dht': { type: 'boolean' },
      dht: { type: 'string' },
      'state-dir': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    },
    allowPositionals: true,
    strict: true
  })
  if (values.help === true) { out.line(`Usage:\n${INFO_USAGE}`); return }
  if (positionals.length !== 1) throw new UsageError('info takes one <manifest file | cid | link>')
  const what = positionals[0]
  let trackers = checkUrls(values.tracker ?? [])
  let peers = checkBootstrap(values.bootstrap ?? [])
  const dht = dhtOption(values.dht, values['no-dht'])
  const where = (): LookupOptions => ({ trackers, peers, listen: values.listen, identity: values.identity, dht, stateDir: values['state-dir'], timeout: parseOption('timeout', values.timeout, parseDuration) })
  let manifest: Manifest
  let cid: string
  if (looksLikeLink(what)) {
    const link = parseLink(what)
    trackers = [...trackers, ...link.trackers]
    peers = [...peers, ...link.peers]
    cid = link.cid.toString()
    manifest = await lookup(cid, where())
  } else if (/^[A-Za-z0-9]+$/.test(what) && what.length > 40 && !(await exists(what))) {
    cid = parseCid(what).toString()
    manifest = await lookup(cid, where())
  } else {
    const read = await readManifestFile(resolve(what))
    manifest = read.manifest
    cid = read.cid.toString()
  }
  const files = manifest.version === 2
    ? manifest.files.map(f => ({ path: f.path.join('/'), bytes: f.length }))
    : [{ path: manifest.name, bytes: manifest.length }]
  const folders = manifest.version === 2 ? manifest.folders.map(f => f.join('/')) : []
  const summary = manifestSummary(manifest)
  const lines = [
    safeText`name:     ${manifest.name}`,
    safeText`cid:      ${cid}`,
    `size:     ${sizeLine(manifest)} (${manifest.length} bytes)`,
    `pieces:   ${String(summary.pieces)} × ${formatBytes(manifest.pieceLength)}`,
    ...trackers.map(t => safeText`tracker:  ${t}`),
    ...peers.map(p => safeText`peer:     ${p}`)
  ]
  if (manifest.version === 2) {
    lines.push('files:')
    for (const f of files) lines.push(safeText`  ${formatBytes(f.bytes).padStart(10)}  ${f.path}`)
    for (const f of folders) lines.push(safeText`  ${'(folder)'.padStart(10)}  ${f}/`)
  }
  out.event({ event: 'info', cid, ...summary, version: manifest.version, files, folders, trackers, peers }, lines.join('\n'))
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
