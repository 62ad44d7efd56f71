import { describe, expect, it } from 'vitest'
import { SmartBan, type SentBlock } from '../../src/swarm/smart-ban.js'

const sent = (pairs: Array<[string, string]>): SentBlock[] => pairs.map(([peer, digest], block) => ({ block, peer, digest }))

describe('SmartBan', () => {
  it('a lone sender of a failed piece is blamed at once', () => {
    const sb = new SmartBan()
    expect(sb.pieceFailed(3, sent([['evil', 'x'], ['evil', 'y']]))).toEqual(['evil'])
    expect(sb.pending).toBe(0)
  })

  it('mixed senders: nobody is blamed until the piece verifies, then only whose block differs', () => {
    const sb = new SmartBan()
    // the framer sent block 0 (garbage), the honest seeder blocks 1..3 (good)
    expect(sb.pieceFailed(7, sent([['framer', 'bad'], ['honest', 'g1'], ['honest', 'g2'], ['honest', 'g3']]))).toEqual([])
    expect(sb.pending).toBe(1)
    expect(sb.blocksToCompare(7)).toEqual([0, 1, 2, 3])
    const good = ['g0', 'g1', 'g2', 'g3']
    expect(sb.pieceVerified(7, (b) => good[b])).toEqual(['framer'])
    expect(sb.pending).toBe(0)
    // once only
    expect(sb.pieceVerified(7, (b) => good[b])).toEqual([])
  })

  it('an honest sender is never blamed, however often the piece failed around it', () => {
    const sb = new SmartBan()
    sb.pieceFailed(1, sent([['a', 'bad-a'], ['honest', 'g1']]))
    sb.pieceFailed(1, sent([['honest', 'g0'], ['b', 'bad-b']]))
    const culprits = sb.pieceVerified(1, (b) => ['g0', 'g1'][b])
    expect(culprits.sort()).toEqual(['a', 'b'])
    expect(culprits).not.toContain('honest')
  })

  it('a peer that sent a good block in one attempt and a bad one in another is a culprit', () => {
    const sb = new SmartBan()
    sb.pieceFailed(0, sent([['sly', 'g0'], ['honest', 'g1']]))
    sb.pieceFailed(0, sent([['honest', 'g0'], ['sly', 'bad']]))
    expect(sb.pieceVerified(0, (b) => ['g0', 'g1'][b])).toEqual(['sly'])
  })

  it('a piece that verifies without ever failing blames nobody', () => {
    expect(new SmartBan().pieceVerified(5, () => 'g')).toEqual([])
  })

  it('remembers at most maxPieces failed pieces, forgetting the oldest', () => {
    const sb = new SmartBan({ maxPieces: 2 })
    for (const p of [0, 1, 2]) sb.pieceFailed(p, sent([['x', 'bad'], ['y', 'g1']]))
    expect(sb.pending).toBe(2)
    expect(sb.pieceVerified(0, () => 'g')).toEqual([])
    expect(sb.pieceVerified(2, (b) => ['g0', 'g1'][b])).toEqual(['x'])
  })
})

describe('SmartBan memory', () => {
  it('holds at most maxEntries digests, dropping the oldest pieces first but never the newest', () => {
    const sb = new SmartBan({ maxEntries: 5 })
    sb.pieceFailed(0, sent([['x', 'b'], ['y', 'g']]))
    sb.pieceFailed(1, sent([['x', 'b'], ['y', 'g']]))
    expect(sb.pending).toBe(2)
    sb.pieceFailed(2, sent([['x', 'b'], ['y', 'g']])) // 6 entries: piece 0 goes
    expect(sb.pending).toBe(2)
    expect(sb.blocksToCompare(0)).toEqual([])
    // one bigger than the whole budget is still kept, alone
    sb.pieceFailed(3, sent([['x', 'b'], ['y', 'g'], ['x', 'b'], ['y', 'g'], ['x', 'b'], ['y', 'g']]))
    expect(sb.pending).toBe(1)
    expect(sb.pieceVerified(3, () => 'g')).toEqual(['x'])
  })
})
