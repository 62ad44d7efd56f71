/**
 * The swarm's counters and its SwarmStats snapshot, on a fake clock and fake sessions, no network.
 */
import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { emptySources } from '../../src/discovery/types.js'
import { pieceCount } from '../../src/manifest/manifest.js'
import { swarmStats, TransferCounters, type StatsSession, type SwarmStatsInput } from '../../src/swarm/stats.js'
import { manifestOf, testBytes } from '../storage/conformance.js'

const PIECE = 16 * 1024
// four pieces, the last one 1000 bytes
const manifest = manifestOf(testBytes(3 * PIECE + 1000), PIECE)
const N = pieceCount(manifest)

const session = (over: Partial<StatsSession> = {}): StatsSession => ({ amChoking: true, peerChoking: true, peerInterested: false, ...over })

function input (over: Partial<SwarmStatsInput> = {}): SwarmStatsInput {
  return {
    transfer: new TransferCounters({ now: () => 0 }),
    sessions: [],
    sources: emptySources(),
    manifest,
    have: new Bitfield(N),
    seeding: false,
    assembly: { wasted: 0, hashFailures: 0, banned: new Set() },
    ...over
  }
}

describe('TransferCounters', () => {
  it('counts bytes either way, downloads by source, and rates over the last few seconds', () => {
    let t = 100_000
    const c = new TransferCounters({ now: () => t })
    c.received(10_000, 'tracker')
    c.received(5_000, 'pex')
    c.received(1_000, 'tracker')
    c.sent(20_000)
    expect([c.downloaded, c.uploaded]).toEqual([16_000, 20_000])
    expect(c.downloadedFrom()).toEqual({ ...emptySources(), tracker: 11_000, pex: 5_000 })
    t += 4_000
    expect(c.downloadRate).toBe(16_000 / 4)
    expect(c.uploadRate).toBe(20_000 / 4)
    // a while later the rates are back to nothing; the totals stay
    t += 10_000
    expect([c.downloadRate, c.uploadRate]).toEqual([0, 0])
    expect([c.downloaded, c.uploaded]).toEqual([16_000, 20_000])
  })

  it('hands out a copy of the downloads by source', () => {
    const c = new TransferCounters()
    const from = c.downloadedFrom()
    from.dht = 99
    expect(c.downloadedFrom().dht).toBe(0)
  })
})

describe('swarmStats', () => {
  it('counts sessions by their flags, and passes the sources on', () => {
    const sources = { ...emptySources(), tracker: 2, incoming: 1 }
    const s = swarmStats(input({
      sessions: [session({ amChoking: false, peerInterested: true }), session({ peerChoking: false }), session({ amChoking: false, peerChoking: false })],
      sources
    }))
    expect(s).toMatchObject({ peers: 3, unchoking: 2, unchokedBy: 2, interested: 1, sources })
  })

  it('what is left: the pieces we lack, the short last one at its size; nothing once seeding', () => {
    const have = new Bitfield(N)
    have.set(1)
    expect(swarmStats(input({ have }))).toMatchObject({ have: 1, pieces: 4, left: 2 * PIECE + 1000 })
    have.set(3)
    expect(swarmStats(input({ have })).left).toBe(2 * PIECE)
    expect(swarmStats(input({ have: Bitfield.full(N), seeding: true }))).toMatchObject({ have: 4, left: 0 })
    expect(swarmStats(input({ have, seeding: true })).left).toBe(0)
  })

  it('bytes and rates from the counters; waste, hash failures and bans from the assembly', () => {
    let t = 0
    const transfer = new TransferCounters({ now: () => t })
    transfer.received(4_000, 'dht')
    transfer.sent(1_000)
    t = 4_000
    const s = swarmStats(input({ transfer, assembly: { wasted: 77, hashFailures: 2, banned: new Set(['x', 'y']) } }))
    expect(s).toMatchObject({ downloaded: 4_000, uploaded: 1_000, wasted: 77, hashFailures: 2, banned: 2 })
    expect(s.downloadedFrom).toEqual({ ...emptySources(), dht: 4_000 })
    expect(s.downloadRate).toBe(1_000)
    expect(s.uploadRate).toBe(250)
  })

  it('an empty swarm: zeros everywhere but what is left', () => {
    expect(swarmStats(input())).toEqual({
      peers: 0,
      unchoking: 0,
      unchokedBy: 0,
      interested: 0,
      have: 0,
      pieces: 4,
      downloaded: 0,
      uploaded: 0,
      downloadRate: 0,
      uploadRate: 0,
      left: 3 * PIECE + 1000,
      wasted: 0,
      hashFailures: 0,
      sources: emptySources(),
      reached: { direct: 0, relayed: 0, 'hole-punched': 0 },
      downloadedFrom: emptySources(),
      banned: 0
    })
  })
})
