/**
 * The periodic stats line (or NDJSON `stats` event) each peer prints every --stats-interval
 * seconds: manifest, peers, choking, pieces, rates, totals, ETA, discovery state.
 */
import type { DiscoveryStatus } from '../discovery/discovery.js'
import type { SwarmStats } from '../swarm/swarm.js'
import { formatBytes, formatDuration, formatRate, shortCid } from './format.js'

/** what a peer is doing: looking for the manifest, downloading, or seeding */
export type { Phase } from '../peer.js'
import type { Phase } from '../peer.js'
import type { Reachability } from '../net/reachability.js'

export interface StatsEvent extends SwarmStats {
  event: 'stats'
  cid: string
  phase: Phase
  progress: number
  eta: number | null
  /** each tracker's state: ok, down, pending (comma-separated), or none */
  tracker: string
  dht: DiscoveryStatus['dht']
  /** whether others can reach us (see Peer.reachability); absent when not known */
  reachability?: Reachability
}

export function statsEvent (cid: string, phase: Phase, s: SwarmStats, discovery: DiscoveryStatus, reachability?: Reachability): StatsEvent {
  const progress = phase === 'manifest' ? 0 : s.pieces === 0 ? 1 : s.have / s.pieces
  const eta = phase === 'manifest' ? null : s.left === 0 ? 0 : s.downloadRate > 0 ? Math.round(s.left / s.downloadRate) : null
  return {
    event: 'stats',
    cid,
    phase,
    ...s,
    downloadRate: Math.round(s.downloadRate),
    uploadRate: Math.round(s.uploadRate),
    progress: Math.round(progress * 10000) / 10000,
    eta,
    tracker: discovery.tracker,
    dht: discovery.dht,
    ...(reachability != null ? { reachability } : {})
  }
}

/** Where our peers came from: `tracker=down:0 dht=5 pex=3 in=1 (dht table 7)`. */
export function discoveryText (e: StatsEvent): string {
  const s = e.sources
  const parts = [e.tracker === 'none' ? 'tracker=none' : `tracker=${e.tracker}:${s.tracker}`, `dht=${s.dht}`, `pex=${s.pex}`]
  if (s.bootstrap > 0) parts.push(`bootstrap=${s.bootstrap}`)
  if (s.cache > 0) parts.push(`cache=${s.cache}`)
  if (s.incoming > 0) parts.push(`in=${s.incoming}`)
  // how we reach them, when not all directly
  const r = e.reached
  if (r != null && r.relayed > 0) parts.push(`relayed=${r.relayed}`)
  if (r != null && r['hole-punched'] > 0) parts.push(`punched=${r['hole-punched']}`)
  if (e.reachability != null && e.reachability !== 'unknown') parts.push(`reachable=${e.reachability}`)
  return `${parts.join(' ')} (${dhtText(e.dht)})`
}

/**
 * The DHTs' state: `dht table 7: lan 5, wan 2 client` (all contacts, then each DHT in use, the
 * WAN one with its mode), `dht off`, or `dht table 7` for a status without the details.
 */
export function dhtText (d: StatsEvent['dht']): string {
  if (d.mode === 'off') return 'dht off'
  const tables: string[] = []
  if (d.lan != null) tables.push(`lan ${d.lan.routingTable}`)
  if (d.wan != null) tables.push(`wan ${d.wan.routingTable} ${d.wan.mode}`)
  return tables.length === 0 ? `dht table ${d.routingTable}` : `dht table ${d.routingTable}: ${tables.join(', ')}`
}

export function statsLine (e: StatsEvent): string {
  const pct = (e.progress * 100).toFixed(1)
  if (e.phase === 'manifest') {
    return [`[${shortCid(e.cid)}]`, 'looking for the manifest', `peers ${e.peers}`, discoveryText(e)].join(' | ')
  }
  return [
    `[${shortCid(e.cid)}]`,
    `peers ${e.peers} (unchoking ${e.unchoking}, unchoked by ${e.unchokedBy})`,
    `${e.have}/${e.pieces} pieces ${pct}%`,
    `↓ ${formatRate(e.downloadRate)} ↑ ${formatRate(e.uploadRate)}`,
    `total ↓ ${formatBytes(e.downloaded)} ↑ ${formatBytes(e.uploaded)}`,
    `ETA ${e.left === 0 ? 'done' : formatDuration(e.eta ?? undefined)}`,
    discoveryText(e)
  ].join(' | ')
}

/** A one-line bar for terminals: `[#########-----------]  45.0%`. */
export function progressBar (progress: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, progress)) * width)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(progress * 100).toFixed(1).padStart(5)}%`
}
