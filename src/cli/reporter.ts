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
  /** the trackers' count of the swarm's seeders and leechers (see DiscoveryStatus); absent until one answers */
  seeders?: number
  leechers?: number
  /** seconds since the peer started; absent when not given */
  elapsed?: number
}

export function statsEvent (cid: string, phase: Phase, s: SwarmStats, discovery: DiscoveryStatus, reachability?: Reachability, elapsed?: number): StatsEvent {
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
    // uploaded ÷ downloaded, or ÷ the bytes held by a peer that downloaded nothing (see SwarmStats)
    ratio: Math.round(s.ratio * 1000) / 1000,
    distributedCopies: Math.round(s.distributedCopies * 1000) / 1000,
    tracker: discovery.tracker,
    dht: discovery.dht,
    ...(reachability != null ? { reachability } : {}),
    ...(discovery.seeders != null ? { seeders: discovery.seeders, leechers: discovery.leechers ?? 0 } : {}),
    ...(elapsed != null ? { elapsed: Math.round(elapsed * 10) / 10 } : {})
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

/** The full stats line (what a pipe gets, after the progress bar). */
export function statsLine (e: StatsEvent): string {
  return statsParts(e, FULL)
}

/**
 * What the stats line shows; a terminal too narrow for all of it loses the less important parts
 * first (see STATUS_LAYOUTS).
 */
interface StatusLayout {
  /** total bytes either way */
  totals: boolean
  /** where our peers came from, the DHTs, reachability */
  discovery: boolean
  /** `(unchoking 2, unchoked by 1)` after the peer count */
  chokes: boolean
  /** the manifest's short CID */
  cid: boolean
  /** `512/1024 pieces` */
  pieces: boolean
  /** the progress bar's width (0: the percentage alone) */
  bar: number
}

const FULL: StatusLayout = { totals: true, discovery: true, chokes: true, cid: true, pieces: true, bar: 24 }

/**
 * The layouts tried in turn until the line fits: totals go first, then the discovery details,
 * the choke counts, the CID, the piece counts, and the bar shrinks. Progress, rates, peers and
 * ETA always stay (a terminal narrower than those cuts the line).
 */
const STATUS_LAYOUTS: StatusLayout[] = [
  FULL,
  { ...FULL, totals: false },
  { ...FULL, totals: false, discovery: false },
  { ...FULL, totals: false, discovery: false, chokes: false },
  { ...FULL, totals: false, discovery: false, chokes: false, cid: false },
  { ...FULL, totals: false, discovery: false, chokes: false, cid: false, pieces: false },
  { totals: false, discovery: false, chokes: false, cid: false, pieces: false, bar: 10 },
  { totals: false, discovery: false, chokes: false, cid: false, pieces: false, bar: 0 }
]

function statsParts (e: StatsEvent, l: StatusLayout): string {
  const parts: string[] = []
  if (l.cid) parts.push(`[${shortCid(e.cid)}]`)
  if (e.phase === 'manifest') {
    parts.push('looking for the manifest', `peers ${e.peers}`)
    if (l.discovery) parts.push(discoveryText(e))
    return parts.join(' | ')
  }
  parts.push(l.chokes ? `peers ${e.peers} (unchoking ${e.unchoking}, unchoked by ${e.unchokedBy})` : `peers ${e.peers}`)
  // the percentage is the bar's when the line is cut to fit
  if (l.pieces) parts.push(l === FULL ? `${e.have}/${e.pieces} pieces ${(e.progress * 100).toFixed(1)}%` : `${e.have}/${e.pieces} pieces`)
  parts.push(`↓ ${formatRate(e.downloadRate)} ↑ ${formatRate(e.uploadRate)}`)
  if (l.totals) parts.push(`total ↓ ${formatBytes(e.downloaded)} ↑ ${formatBytes(e.uploaded)}`)
  parts.push(`ETA ${e.left === 0 ? 'done' : formatDuration(e.eta ?? undefined)}`)
  if (l.discovery) parts.push(discoveryText(e))
  return parts.join(' | ')
}

/**
 * The status line: the progress bar and the stats line, all of it without a width (piped), else
 * the first layout that fits in `width - 1` columns (a line as wide as the terminal wraps on
 * some); the narrowest layout if none does (the terminal cuts it).
 */
export function statusLine (e: StatsEvent, width?: number): string {
  const render = (l: StatusLayout): string => {
    const pct = `${(e.progress * 100).toFixed(1).padStart(5)}%`
    const head = l.bar > 0 ? progressBar(e.progress, l.bar) : pct
    const rest = statsParts(e, l)
    return l.cid ? `${head} ${rest}` : `${head} | ${rest}`
  }
  if (width == null) return render(FULL)
  let line = ''
  for (const l of STATUS_LAYOUTS) {
    line = render(l)
    if (line.length <= width - 1) return line
  }
  return line
}

/** A one-line bar for terminals: `[#########-----------]  45.0%`. */
export function progressBar (progress: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, progress)) * width)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(progress * 100).toFixed(1).padStart(5)}%`
}
