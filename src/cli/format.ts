/** Human-readable figures for the stats line. */
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

export function formatBytes (n: number): string {
  let v = n
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++ }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`
}

export function formatRate (bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`
}

export function formatDuration (seconds: number | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return '∞'
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

export function shortCid (cid: string): string {
  return cid.length > 12 ? `${cid.slice(0, 6)}…${cid.slice(-6)}` : cid
}
