/**
 * What `seed` and `get` show while they run: the stats line fitted to a terminal's width, the
 * `--peers` table, and Output's timestamps and in-place redraws. Pure functions over a width, and
 * Output over a fake stdout.
 */
import { describe, expect, it } from 'vitest'
import { Output } from '../../src/cli/output.js'
import { middleEllipsis, peerFlags, peersTable } from '../../src/cli/peers-table.js'
import { statsEvent, statsLine, statusLine, type StatsEvent } from '../../src/cli/reporter.js'
import type { PeerInfo } from '../../src/swarm/stats.js'

const CID = 'bafyreie2slt4e4plywxq7mbctnrc24cj6tzs4szknkkjd7e6qhg5cbui7i'
const MiB = 1 << 20

type Stats = Parameters<typeof statsEvent>[2]

function stats (over: Partial<Stats> = {}): Stats {
  return {
    peers: 12, unchoking: 4, unchokedBy: 3, interested: 5, have: 1536, pieces: 4096, downloaded: 96 * MiB, uploaded: 40 * MiB,
    downloadRate: 3.5 * MiB, uploadRate: 900 * 1024, left: 160 * MiB, wasted: 0, hashFailures: 0,
    sources: { tracker: 8, dht: 2, pex: 1, bootstrap: 0, cache: 0, incoming: 1 },
    reached: { direct: 11, relayed: 1, 'hole-punched': 0 },
    downloadedFrom: { tracker: 96 * MiB, dht: 0, pex: 0, bootstrap: 0, cache: 0, incoming: 0 },
    banned: 0, ratio: 40 / 96, distributedCopies: 2.25,
    ...over
  }
}

function event (over: Partial<Stats> = {}, phase: StatsEvent['phase'] = 'downloading'): StatsEvent {
  const discovery = { tracker: 'ok', dht: { routingTable: 40, provided: true, mode: 'auto' as const, lan: { routingTable: 12, provided: true, mode: 'server' as const }, wan: { routingTable: 28, provided: true, mode: 'client' as const } }, seeders: 3, leechers: 9 }
  return statsEvent(CID, phase, stats(over), discovery, 'public', 61.26)
}

describe('stats event', () => {
  it('carries ratio, distributed copies, the tracker\'s counts and the elapsed time', () => {
    expect(event()).toMatchObject({ ratio: 0.417, distributedCopies: 2.25, seeders: 3, leechers: 9, elapsed: 61.3 })
    // no tracker answer yet: no counts; no start time: no elapsed
    const bare = statsEvent(CID, 'manifest', stats(), { tracker: 'pending', dht: { routingTable: 0, provided: false } })
    expect(bare).not.toHaveProperty('seeders')
    expect(bare).not.toHaveProperty('leechers')
    expect(bare).not.toHaveProperty('elapsed')
  })
})

describe('status line: fitted to the terminal', () => {
  it('piped (no width): the whole line, as before', () => {
    const e = event()
    const line = statusLine(e)
    expect(line).toBe(`[#########---------------]  37.5% ${statsLine(e)}`)
    expect(line).toContain('total ↓ 96.0 MiB ↑ 40.0 MiB')
    expect(line).toContain('tracker=ok:8')
  })

  it('80 columns: progress, rates, peers and ETA, within 79 characters', () => {
    const line = statusLine(event(), 80)
    expect(line.length).toBeLessThanOrEqual(79)
    for (const part of ['37.5%', 'peers 12', '↓ 3.5 MiB/s', '↑ 900.0 KiB/s', 'ETA 46s']) expect(line).toContain(part)
    // what goes first: totals, discovery, choke counts
    expect(line).not.toContain('total')
    expect(line).not.toContain('tracker=')
    expect(line).not.toContain('unchoking')
  })

  it('drops the less important parts first as the width shrinks, and never exceeds it while it can fit', () => {
    const e = event()
    const full = statusLine(e)
    let prev = full
    // the narrowest layout: progress, peers, rates, ETA
    const narrowest = statusLine(e, 1).length
    expect(narrowest).toBeLessThan(60)
    for (let width = full.length + 1; width > narrowest; width--) {
      const line = statusLine(e, width)
      expect(line.length, `width ${width}`).toBeLessThanOrEqual(width - 1)
      // narrower never shows more
      expect(line.length).toBeLessThanOrEqual(prev.length)
      prev = line
      // progress, peers, rates and ETA at every width
      for (const part of ['37.5%', 'peers 12', '↓ 3.5 MiB/s', 'ETA 46s']) expect(line, `width ${width}`).toContain(part)
    }
    // the order things go in
    const at = (w: number): string => statusLine(e, w)
    const wide = full.length + 1
    expect(at(wide)).toBe(full)
    expect(at(wide - 1)).not.toContain('total ↓')
    expect(at(wide - 1)).toContain('tracker=')
    const noDiscovery = statusLine(e, full.length - 60)
    expect(noDiscovery).not.toContain('tracker=')
    expect(noDiscovery).toContain('unchoking')
  })

  it('too narrow for the essentials: the narrowest layout (the terminal cuts it)', () => {
    const line = statusLine(event(), 20)
    expect(line).toMatch(/^ 37\.5% \| peers 12 \| ↓/)
  })

  it('looking for the manifest: discovery goes before the CID', () => {
    const e = event({ pieces: 0, have: 0, left: Number.MAX_SAFE_INTEGER }, 'manifest')
    expect(statusLine(e)).toContain('tracker=ok')
    const line = statusLine(e, 80)
    expect(line.length).toBeLessThanOrEqual(79)
    expect(line).toContain('looking for the manifest')
    expect(line).toContain('peers 12')
  })
})

function info (over: Partial<PeerInfo> = {}): PeerInfo {
  return {
    peerId: '12D3KooWGxxtRJVswxW1VCj9hirZaiiaJ9nfzhHqoRjyJ5T4WAo5',
    address: '/ip4/127.0.0.1/tcp/34731',
    source: 'tracker',
    via: 'direct',
    progress: 0.4567,
    downloadRate: 1.5 * MiB,
    uploadRate: 300 * 1024,
    amChoking: false,
    amInterested: true,
    peerChoking: false,
    peerInterested: true,
    optimistic: false,
    snubbed: false,
    ...over
  }
}

describe('peer flags', () => {
  it('Transmission\'s letters: D/d, U/u, K, ?, O, S', () => {
    expect(peerFlags(info())).toBe('DU')
    expect(peerFlags(info({ peerChoking: true, amChoking: true }))).toBe('du')
    expect(peerFlags(info({ amInterested: false, peerInterested: false }))).toBe('K?')
    expect(peerFlags(info({ amInterested: false, peerChoking: true, peerInterested: false, amChoking: true }))).toBe('')
    expect(peerFlags(info({ optimistic: true, snubbed: true }))).toBe('DUOS')
  })
})

describe('peers table', () => {
  const peers = [
    info(),
    info({ peerId: '12D3KooWNmUg6L3MBBZzddAPY8L2agoJTKW4ijijBJGn5hLECbZ7', address: '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWRelayRelayRelayRelayRelayRelayRelayRelayRe/p2p-circuit', via: 'relayed', progress: 1, downloadRate: 0, amInterested: false, peerChoking: true, optimistic: true }),
    info({ peerId: '12D3KooWQFpvc1AD1ZKLHiYcwBUDti8bG9YPbPnS2pHerPa7JRS9', address: '/ip6/2001:db8::1/tcp/4001', via: 'hole-punched', progress: 0, uploadRate: 0, peerInterested: false })
  ]

  it('a header and a row per peer: short id, via, have, rates, flags, address', () => {
    const lines = peersTable(peers)
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^ peer\s+via\s+have\s+down\/s\s+up\/s flags address$/)
    expect(lines[1]).toBe(' …J5T4WAo5 direct   45.7%    1.5 MiB  300.0 KiB DU    /ip4/127.0.0.1/tcp/34731')
    expect(lines[2]).toContain(' relayed   100%        0 B  300.0 KiB UO    /ip4/203.0.113.7/tcp/4001/p2p/12D3KooWRelay')
    expect(lines[3]).toContain(' punched   0.0% ')
    // the columns line up: every address starts where the header's does
    const col = lines[0].indexOf('address')
    for (const l of lines.slice(1)) expect(l.slice(col - 1, col)).toBe(' ')
  })

  it('on 80 columns each line fits, an IPv4 address whole, a long one shortened in its middle', () => {
    const lines = peersTable(peers, { width: 80 })
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(79)
    expect(lines[1]).toContain('/ip4/127.0.0.1/tcp/34731')
    expect(lines[2]).toMatch(/\/ip4\/203\.0.*….*p2p-circuit$/)
    // and on any width, nothing spills
    for (let w = 10; w <= 140; w++) for (const l of peersTable(peers, { width: w })) expect(l.length).toBeLessThanOrEqual(w - 1)
  })

  it('more peers than the terminal has rows: as many as fit, and how many more', () => {
    const many = Array.from({ length: 30 }, (_, i) => info({ peerId: `12D3KooWpeer${String(i).padStart(40, '0')}` }))
    const lines = peersTable(many, { width: 100, maxLines: 10 })
    expect(lines).toHaveLength(10)
    expect(lines[9]).toBe(' … and 22 more')
    expect(peersTable(many.slice(0, 9), { maxLines: 10 })).toHaveLength(10)
  })

  it('no peers: says so', () => {
    expect(peersTable([])).toEqual([expect.stringContaining('peer'), ' (no peers connected)'])
  })

  it('middleEllipsis keeps both ends', () => {
    expect(middleEllipsis('/ip4/127.0.0.1/tcp/34731', 30)).toBe('/ip4/127.0.0.1/tcp/34731')
    expect(middleEllipsis('abcdefghij', 5)).toBe('ab…ij')
    expect(middleEllipsis('abcdefghij', 1)).toBe('a')
    expect(middleEllipsis('abcdefghij', 0)).toBe('')
  })
})

/** A stdout that records what is written, as a terminal of `columns` or as a pipe. */
function fakeStdout (tty: boolean, columns?: number): NodeJS.WriteStream & { text: string } {
  const s = { text: '', isTTY: tty, columns, rows: 24, write (chunk: string) { s.text += chunk; return true } }
  return s as unknown as NodeJS.WriteStream & { text: string }
}

describe('Output', () => {
  it('stamps every JSON event with ts, right after the event name, without touching the rest', () => {
    const stdout = fakeStdout(false)
    const out = new Output(true, stdout)
    const before = Date.now()
    out.event({ event: 'peer:disconnect', peerId: 'p', reason: 'connection closed' }, 'peer p left')
    const line = stdout.text.trim()
    expect(line).toMatch(/^\{"event":"peer:disconnect","ts":\d+,"peerId":"p","reason":"connection closed"\}$/)
    const ts = (JSON.parse(line) as { ts: number }).ts
    expect(ts).toBeGreaterThanOrEqual(before)
    expect(ts).toBeLessThanOrEqual(Date.now())
  })

  it('piped: the status and the lines under it are appended, whole', () => {
    const stdout = fakeStdout(false)
    const out = new Output(false, stdout)
    expect(out.columns).toBeUndefined()
    out.status('x'.repeat(200), ['row 1', 'row 2'])
    out.status('again')
    expect(stdout.text).toBe(`${'x'.repeat(200)}\nrow 1\nrow 2\nagain\n`)
  })

  it('on a terminal: the block is redrawn in place (cursor up, clear), each line cut to the width', () => {
    const stdout = fakeStdout(true, 40)
    const out = new Output(false, stdout)
    expect(out.columns).toBe(40)
    out.status('y'.repeat(100), ['row 1', 'row 2'])
    expect(stdout.text).toBe(`${'y'.repeat(39)}\nrow 1\nrow 2`)
    stdout.text = ''
    out.status('status', ['row 1'])
    // back up the two lines under the first, clear to the end of the screen, draw
    expect(stdout.text).toBe('\r\x1b[2A\x1b[Jstatus\nrow 1')
    stdout.text = ''
    // a plain line clears the block first; the next status starts afresh under it
    out.line('peer …abc left: connection closed')
    out.status('status')
    expect(stdout.text).toBe('\r\x1b[1A\x1b[Jpeer …abc left: connection closed\nstatus')
    // a width the terminal does not say: 80
    expect(new Output(false, fakeStdout(true)).columns).toBe(80)
  })

  it('escapes what came from the network in every line of the block', () => {
    const stdout = fakeStdout(false)
    new Output(false, stdout).status('ok', ['evil\x1b[2J\rname'])
    expect(stdout.text).toBe('ok\nevil\\x1b[2J\\rname\n')
  })
})
