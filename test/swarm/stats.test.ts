/**
 * The swarm's counters and its SwarmStats snapshot, on a fake clock and fake sessions, no network.
 */
import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { emptySources } from '../../src/discovery/types.js'
import { pieceCount } from '../../src/manifest/manifest.js'
import { distributedCopies, peerInfo, swarmStats, TransferCounters, type StatsSession, type SwarmStatsInput } from '../../src/swarm/stats.js'
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
      banned: 0,
      ratio: 0,
      distributedCopies: 0
    })
  })

  it('ratio: uploaded ÷ downloaded; with nothing downloaded, uploaded ÷ the bytes held', () => {
    const transfer = new TransferCounters({ now: () => 0 })
    transfer.sent(3 * PIECE)
    // a seed holds the whole file (3 pieces and a short one)
    expect(swarmStats(input({ transfer, have: Bitfield.full(N), seeding: true })).ratio).toBeCloseTo(3 * PIECE / (3 * PIECE + 1000))
    // holding two full pieces
    const have = new Bitfield(N)
    have.set(0)
    have.set(1)
    expect(swarmStats(input({ transfer, have })).ratio).toBe(1.5)
    // once something came in, that is the measure
    transfer.received(PIECE, 'tracker')
    expect(swarmStats(input({ transfer, have })).ratio).toBe(3)
    // nothing held, nothing downloaded: 0, not a division by zero
    expect(swarmStats(input({ transfer: new TransferCounters() })).ratio).toBe(0)
  })

  it('distributed copies: the peers\' availability of each piece, and ours', () => {
    const have = new Bitfield(N)
    have.set(0)
    // peers have: piece 0 ×1, 1 ×2, 2 ×1, 3 ×1; with ours: 2, 2, 1, 1 → one copy, and half the pieces of a second
    const avail = [1, 2, 1, 1]
    expect(swarmStats(input({ have, availability: (i) => avail[i] })).distributedCopies).toBe(1.5)
    // no peers, all pieces ours: one copy
    expect(swarmStats(input({ have: Bitfield.full(N), seeding: true })).distributedCopies).toBe(1)
  })
})

describe('distributedCopies', () => {
  it('the rarest piece\'s count, and the fraction of pieces that more have', () => {
    expect(distributedCopies([2, 2, 2, 2])).toBe(2)
    expect(distributedCopies([2, 3, 2, 3])).toBe(2.5)
    // Transmission's example: two full copies and a quarter of a third
    expect(distributedCopies([2, 3, 2, 2])).toBe(2.25)
    // a piece nobody has: no full copy, whatever the rest
    expect(distributedCopies([0, 5, 5, 5])).toBe(0.75)
    expect(distributedCopies([0, 0, 0, 0])).toBe(0)
    expect(distributedCopies([1])).toBe(1)
    expect(distributedCopies(new Uint32Array([4, 7, 9, 4, 4]))).toBe(4.4)
  })

  it('no pieces: 0', () => {
    expect(distributedCopies([])).toBe(0)
  })
})

describe('per-peer figures', () => {
  it('each session\'s rates over the stats window, apart from the others\'', () => {
    let t = 100_000
    const c = new TransferCounters({ now: () => t })
    const a = {}
    const b = {}
    c.received(8_000, 'tracker', a)
    c.sent(2_000, a)
    c.received(4_000, 'pex', b)
    c.sent(1_000)
    t += 4_000
    expect(c.ratesOf(a)).toEqual({ downloadRate: 2_000, uploadRate: 500 })
    expect(c.ratesOf(b)).toEqual({ downloadRate: 1_000, uploadRate: 0 })
    expect(c.ratesOf({})).toEqual({ downloadRate: 0, uploadRate: 0 })
    // the swarm's rates count every session's bytes
    expect([c.downloadRate, c.uploadRate]).toEqual([3_000, 750])
  })

  it('peerInfo: progress from the have-state, rates rounded, flags passed on', () => {
    const facts = { address: '/ip4/10.0.0.2/tcp/4001', source: 'pex' as const, via: 'direct' as const, pieces: 8, rates: { downloadRate: 1234.6, uploadRate: 0.4 }, optimistic: true, snubbed: false }
    const flags = { amChoking: false, amInterested: true, peerChoking: true, peerInterested: false }
    const has = new Bitfield(8)
    has.set(1)
    has.set(5)
    has.set(6)
    expect(peerInfo({ remotePeer: 'p', ...flags, peerHas: has, peerHasAll: false }, facts)).toEqual({
      peerId: 'p', address: '/ip4/10.0.0.2/tcp/4001', source: 'pex', via: 'direct', progress: 0.375, downloadRate: 1235, uploadRate: 0, ...flags, optimistic: true, snubbed: false
    })
    expect(peerInfo({ remotePeer: 'p', ...flags, peerHas: undefined, peerHasAll: false }, facts).progress).toBe(0)
    expect(peerInfo({ remotePeer: 'p', ...flags, peerHas: Bitfield.full(8), peerHasAll: true }, facts).progress).toBe(1)
  })
})
