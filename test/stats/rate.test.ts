import { describe, expect, it } from 'vitest'
import { RateMeter } from '../../src/stats/rate.js'
import { formatBytes, formatDuration } from '../../src/cli/format.js'
import { progressBar, statsEvent, statsLine } from '../../src/cli/reporter.js'

describe('RateMeter', () => {
  it('averages over its window and forgets what fell out of it', () => {
    let now = 1_000_000
    const m = new RateMeter({ windowMs: 5000, now: () => now })
    for (let s = 0; s < 5; s++) { m.add(1000); now += 1000 }
    expect(m.rate()).toBeGreaterThan(900)
    expect(m.rate()).toBeLessThan(1300)
    now += 10_000
    expect(m.rate()).toBe(0)
    expect(m.total).toBe(5000)
  })

  it('does not report a huge rate in its first moments', () => {
    let now = 0
    const m = new RateMeter({ windowMs: 20_000, now: () => now })
    m.add(16384)
    now = 10
    expect(m.rate()).toBeLessThanOrEqual(16384)
  })
})

describe('stats line', () => {
  it('formats sizes, durations and the line', () => {
    expect(formatBytes(0)).toBe('0 B')
    expect(formatBytes(1536)).toBe('1.5 KiB')
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB')
    expect(formatDuration(75)).toBe('1m15s')
    expect(formatDuration(undefined)).toBe('∞')
    const stats = {
      peers: 3, unchoking: 2, unchokedBy: 1, interested: 2, have: 512, pieces: 1024, downloaded: 1 << 25, uploaded: 1 << 20,
      downloadRate: 1 << 20, uploadRate: 1 << 19, left: 1 << 25, wasted: 0, hashFailures: 0,
      sources: { tracker: 2, dht: 1, pex: 0, bootstrap: 0, cache: 0, incoming: 0 },
      reached: { direct: 3, relayed: 0, 'hole-punched': 0 },
      downloadedFrom: { tracker: 1 << 24, dht: 1 << 24, pex: 0, bootstrap: 0, cache: 0, incoming: 0 },
      banned: 0, ratio: 1 / 32, distributedCopies: 1.5
    }
    const discovery = { tracker: 'ok', dht: { routingTable: 4, provided: true } }
    const e = statsEvent('bafyreie2slt4e4plywxq7mbctnrc24cj6tzs4szknkkjd7e6qhg5cbui7i', 'downloading', stats, discovery)
    expect(e).toMatchObject({ event: 'stats', phase: 'downloading', progress: 0.5, eta: 32 })
    expect(statsLine(e)).toBe('[bafyre…cbui7i] | peers 3 (unchoking 2, unchoked by 1) | 512/1024 pieces 50.0% | ↓ 1.0 MiB/s ↑ 512.0 KiB/s | total ↓ 32.0 MiB ↑ 1.0 MiB | ETA 32s | tracker=ok:2 dht=1 pex=0 (dht table 4)')
    expect(progressBar(0.5, 10)).toBe('[#####-----]  50.0%')
    const waiting = statsEvent('bafyreie2slt4e4plywxq7mbctnrc24cj6tzs4szknkkjd7e6qhg5cbui7i', 'manifest', { ...stats, pieces: 0, have: 0, left: Number.MAX_SAFE_INTEGER }, { ...discovery, tracker: 'down' })
    expect(waiting).toMatchObject({ progress: 0, eta: null })
    expect(statsLine(waiting)).toBe('[bafyre…cbui7i] | looking for the manifest | peers 3 | tracker=down:2 dht=1 pex=0 (dht table 4)')
  })
})
