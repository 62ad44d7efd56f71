/**
 * `--peers`: the connected peers as a compact table under the stats line, one row each (as
 * transmission-remote -pi and libtorrent's peer list show them): short id, via, how much it
 * has, the rates either way (bytes/s), the flags, and its address last (the column a narrow
 * terminal shortens).
 */
import type { PeerInfo } from '../swarm/stats.js'
import { shortId } from '../session/session.js'
import { formatBytes } from './format.js'

/**
 * Transmission's and libtorrent's letters for a peer:
 * - `D` we download from it (interested, and it unchokes us); `d` we would, but it chokes us;
 * - `U` we upload to it (it is interested, and we unchoke it); `u` it would like us to, we choke it;
 * - `K` it unchokes us, but we are not interested; `?` we unchoke it, but it is not interested;
 * - `O` it holds our optimistic unchoke; `S` it snubs us (see PeerInfo.snubbed).
 */
export function peerFlags (p: PeerInfo): string {
  let f = ''
  if (p.amInterested) f += p.peerChoking ? 'd' : 'D'
  else if (!p.peerChoking) f += 'K'
  if (p.peerInterested) f += p.amChoking ? 'u' : 'U'
  else if (!p.amChoking) f += '?'
  if (p.optimistic) f += 'O'
  if (p.snubbed) f += 'S'
  return f
}

const HEADER = ['peer', 'via', 'have', 'down/s', 'up/s', 'flags', 'address']
/**
 * widths of the fixed columns (the address takes what is left: on 80 columns, an IPv4 address
 * and port fit whole)
 */
const WIDTHS = [9, 7, 6, 10, 10, 5]
const INDENT = ' '
/** how we reach a peer, in the via column's width */
const VIA: Record<PeerInfo['via'], string> = { direct: 'direct', relayed: 'relayed', 'hole-punched': 'punched' }

/** The share of the pieces a peer has, as `45.0%` or `100%`. */
function percent (progress: number): string {
  return progress >= 1 ? '100%' : `${(progress * 100).toFixed(1)}%`
}

function row (cells: string[]): string {
  const fixed = cells.slice(0, WIDTHS.length).map((c, i) => i === 0 || i === 1 || i === 5 ? c.padEnd(WIDTHS[i]) : c.padStart(WIDTHS[i]))
  return `${INDENT}${fixed.join(' ')} ${cells[WIDTHS.length] ?? ''}`.trimEnd()
}

/** `text` cut to `max` characters, with `…` in place of the middle (an address keeps its ends). */
export function middleEllipsis (text: string, max: number): string {
  if (text.length <= max) return text
  if (max <= 1) return text.slice(0, Math.max(0, max))
  const head = Math.ceil((max - 1) / 2)
  return `${text.slice(0, head)}…${text.slice(text.length - (max - 1 - head))}`
}

export interface PeersTableOptions {
  /** columns to fit in (a terminal); none: full lines (a pipe) */
  width?: number
  /** most lines in all, the header included (a terminal's height); none: every peer */
  maxLines?: number
}

/**
 * The table's lines: a header, then a row per peer in the order given (the order sessions
 * opened: rows stay put while redrawn). Within `width` each line fits in `width - 1` columns,
 * the address shortened in its middle; past `maxLines` the last line says how many more.
 */
export function peersTable (peers: readonly PeerInfo[], options: PeersTableOptions = {}): string[] {
  const lines = [row(HEADER)]
  if (peers.length === 0) return [...lines, `${INDENT}(no peers connected)`]
  const fixedWidth = INDENT.length + WIDTHS.reduce((a, b) => a + b + 1, 0)
  const room = options.width == null ? undefined : Math.max(0, options.width - 1 - fixedWidth)
  const rows = peers.map(p => row([
    shortId(p.peerId), VIA[p.via] ?? p.via, percent(p.progress), formatBytes(p.downloadRate), formatBytes(p.uploadRate), peerFlags(p),
    room == null ? p.address : middleEllipsis(p.address, room)
  ]))
  const max = options.maxLines
  if (max != null && rows.length + 1 > max) {
    const shown = Math.max(0, max - 2)
    lines.push(...rows.slice(0, shown), `${INDENT}… and ${rows.length - shown} more`)
  } else {
    lines.push(...rows)
  }
  return options.width == null ? lines : lines.map(l => l.slice(0, Math.max(0, options.width as number - 1)))
}
