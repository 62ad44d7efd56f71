import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { BLOCK_SIZE, PiecePicker, requestDepth } from '../../src/picker/picker.js'
import type { BlockSpec } from '../../src/wire/codec.js'
import { prng } from '../helpers/prng.js'

// Policy tests in the style of libtorrent's test_piece_picker: availability is a string with one
// digit per piece ("2223333": piece 3 is held by three peers), the have-set a string where '*'
// marks a piece we already have ("* * *  ").

interface Setup {
  availability: string
  have?: string
  blocksPerPiece?: number
  randomFirstPieces?: number
  random?: () => number
}

/** Peers 'p0'..'p(k-1)': peer j has piece i when j < availability[i]. */
function setup (s: Setup): PiecePicker {
  const n = s.availability.length
  const bpp = s.blocksPerPiece ?? 1
  let have: Bitfield | undefined
  if (s.have !== undefined) {
    have = new Bitfield(n)
    for (let i = 0; i < n; i++) if (s.have[i] === '*') have.set(i)
  }
  const picker = new PiecePicker({
    pieceCount: n,
    pieceLength: bpp * BLOCK_SIZE,
    totalLength: n * bpp * BLOCK_SIZE,
    randomFirstPieces: s.randomFirstPieces ?? 0,
    random: s.random ?? (() => 0),
    have
  })
  const counts = [...s.availability].map(Number)
  const peers = Math.max(0, ...counts)
  for (let j = 0; j < peers; j++) {
    const bf = new Bitfield(n)
    for (let i = 0; i < n; i++) if (j < counts[i]) bf.set(i)
    picker.addPeer(`p${j}`, bf)
  }
  return picker
}

const pieces = (blocks: BlockSpec[]): number[] => [...new Set(blocks.map(b => b.piece))]

/** A deterministic sequence for injected randomness. */
function sequence (...values: number[]): () => number {
  let i = 0
  return () => values[i++ % values.length]
}

describe('PiecePicker: rarest first', () => {
  it('picks the rarest piece the peer has', () => {
    const picker = setup({ availability: '4443444' })
    expect(pieces(picker.pick('p0', 1))).toEqual([3])
  })

  it('only considers pieces this peer has', () => {
    // p0 has everything; p3 only has pieces with availability 4: piece 3 is rarest, but not p3's
    const picker = setup({ availability: '4443444' })
    expect(picker.peerHas('p3', 3)).toBe(false)
    expect(pieces(picker.pick('p3', 1))).not.toContain(3)
  })

  it('breaks ties with the injected random source', () => {
    expect(pieces(setup({ availability: '3113', random: () => 0 }).pick('p0', 1))).toEqual([1])
    expect(pieces(setup({ availability: '3113', random: () => 0.99 }).pick('p0', 1))).toEqual([2])
  })

  it('takes the rarest pieces as a run of neighbours from a random start, bucket by bucket', () => {
    // availability 1: [0, 2, 4, 6], 0.5 -> a start at 4, wrapping round; then availability 2: [1, 3, 5], 0.5 -> 3
    const picker = setup({ availability: '1212121', random: () => 0.5 })
    expect(picker.pick('p0', 7).map(b => b.piece)).toEqual([4, 6, 0, 2, 3, 5, 1])
  })

  it('orders several new pieces by rarity', () => {
    const picker = setup({ availability: '5142' })
    expect(picker.pick('p0', 4).map(b => b.piece)).toEqual([1, 3, 2, 0])
  })

  it('never picks a piece we have', () => {
    const picker = setup({ availability: '1111', have: '** *' })
    expect(picker.pick('p0', 10).map(b => b.piece)).toEqual([2])
    expect(picker.pick('p0', 10)).toEqual([])
  })

  it('never picks a piece we have even when it is the rarest', () => {
    const picker = setup({ availability: '2122', have: ' *  ' })
    expect(picker.pick('p0', 3).map(b => b.piece).sort()).toEqual([0, 2, 3])
  })

  it('tracks availability through addPeer, peerHave and removePeer', () => {
    const picker = setup({ availability: '2100' })
    expect([0, 1, 2, 3].map(i => picker.availability(i))).toEqual([2, 1, 0, 0])
    picker.addPeer('seed', 'all')
    picker.peerHave('p1', 3)
    picker.peerHave('p1', 3) // duplicate have: counted once
    picker.peerHave('p1', 99) // out of range: ignored
    expect([0, 1, 2, 3].map(i => picker.availability(i))).toEqual([3, 2, 1, 2])
    picker.removePeer('p0')
    expect([0, 1, 2, 3].map(i => picker.availability(i))).toEqual([2, 1, 1, 2])
    picker.removePeer('seed')
    expect([0, 1, 2, 3].map(i => picker.availability(i))).toEqual([1, 0, 0, 1])
    // replacing a peer's have-set replaces its availability
    picker.addPeer('p1', 'none')
    expect([0, 1, 2, 3].map(i => picker.availability(i))).toEqual([0, 0, 0, 0])
    picker.peerHave('newcomer', 2) // a have before any bitfield: the peer starts empty
    expect(picker.peerHas('newcomer', 2)).toBe(true)
    expect(picker.availability(2)).toBe(1)
  })

  it('availabilityMap: every piece\'s count at once, capped at 255', () => {
    const picker = setup({ availability: '2100' })
    picker.addPeer('seed', 'all')
    expect([...picker.availabilityMap()]).toEqual([3, 2, 1, 1])
    for (let j = 0; j < 300; j++) picker.addPeer(`s${j}`, 'all')
    expect([...picker.availabilityMap()]).toEqual([255, 255, 255, 255])
  })

  it('activePieceIndexes: the pieces requested and not yet verified, in index order', () => {
    const picker = setup({ availability: '1111', blocksPerPiece: 2 })
    expect(picker.activePieceIndexes()).toEqual([])
    const blocks = picker.pick('p0', 8)
    expect(picker.activePieceIndexes()).toEqual([0, 1, 2, 3])
    // all of piece 2 arrives and is verified; piece 0's requests fail: both leave the list
    for (const b of blocks.filter(b => b.piece === 2)) picker.blockReceived('p0', b.piece, b.offset)
    picker.pieceVerified(2)
    for (const b of blocks.filter(b => b.piece === 0)) picker.requestFailed('p0', b)
    expect(picker.activePieceIndexes()).toEqual([1, 3])
  })

  it('isInteresting: the peer has a piece we lack', () => {
    const picker = setup({ availability: '2100', have: '*   ' })
    expect(picker.isInteresting('p0')).toBe(true) // has piece 1
    expect(picker.isInteresting('p1')).toBe(false) // only piece 0, which we have
    picker.addPeer('empty', 'none')
    expect(picker.isInteresting('empty')).toBe(false)
    picker.peerHave('empty', 3)
    expect(picker.isInteresting('empty')).toBe(true)
    picker.pieceVerified(1)
    expect(picker.isInteresting('p0')).toBe(false)
    picker.addPeer('seed', 'all')
    expect(picker.isInteresting('seed')).toBe(true)
    expect(picker.isInteresting('unknown')).toBe(false)
  })
})

describe('PiecePicker: random first pieces', () => {
  it('picks a random piece (not the rarest) while we have fewer than randomFirstPieces', () => {
    // candidates are 0..3 in order; 0.9 * 4 -> index 3, the most common piece
    const picker = setup({ availability: '1234', randomFirstPieces: 1, random: () => 0.9 })
    expect(pieces(picker.pick('p0', 1))).toEqual([3])
  })

  it('follows the injected random source: a run of neighbours from a random start', () => {
    const picker = setup({ availability: '1111111', randomFirstPieces: 4, random: sequence(0.5, 0.99) })
    // 7 candidates in index order: 0.5 -> a start at 3, then its neighbours
    expect(picker.pick('p0', 3).map(b => b.piece)).toEqual([3, 4, 5])
    // the 4 left, [0, 1, 2, 6]: 0.99 -> a start at 6, wrapping round to 0
    expect(picker.pick('p0', 2).map(b => b.piece)).toEqual([6, 0])
  })

  it('pieces of several blocks are each drawn at random, not taken as a run', () => {
    const picker = setup({ availability: '1111111', blocksPerPiece: 2, randomFirstPieces: 4, random: sequence(0.5, 0, 0.99) })
    // 7 candidates: 0.5 -> 3; then [0,1,2,6,4,5]: 0 -> 0; then [5,1,2,6,4]: 0.99 -> 4
    expect(pieces(picker.pick('p0', 6))).toEqual([3, 0, 4])
  })

  it('switches to rarest first once enough pieces are verified', () => {
    const picker = setup({ availability: '4442444', randomFirstPieces: 2, have: '*      ', random: () => 0.99 })
    expect(pieces(picker.pick('p0', 1))).toEqual([6]) // 1 < 2 verified: random
    picker.pieceVerified(5)
    expect(pieces(picker.pick('p0', 1))).toEqual([3]) // 2 verified: rarest
  })
})

describe('PiecePicker: partial pieces first', () => {
  it('finishes a started piece before starting a rarer one', () => {
    const picker = setup({ availability: '3333', blocksPerPiece: 4 })
    const first = picker.pick('p0', 2)
    expect(first.map(b => [b.piece, b.offset])).toEqual([[0, 0], [0, BLOCK_SIZE]])
    // piece 3 becomes the rarest by far, but piece 0 was started: strict priority
    picker.removePeer('p2')
    picker.peerHave('p1', 0)
    picker.addPeer('x', Bitfield.full(4))
    picker.addPeer('y', Bitfield.full(4))
    picker.addPeer('p2', new Bitfield(4))
    const next = picker.pick('p1', 3)
    expect(next.map(b => [b.piece, b.offset])).toEqual([[0, 2 * BLOCK_SIZE], [0, 3 * BLOCK_SIZE], [1, 0]])
  })

  it('finishes the oldest started piece first', () => {
    const picker = setup({ availability: '1111', blocksPerPiece: 2 })
    picker.addPeer('a', 'all')
    picker.addPeer('b', 'all')
    const a = picker.pick('a', 1) // starts piece 0
    const b = picker.pick('b', 3) // piece 0 block 1, then piece 1
    expect(a.map(x => [x.piece, x.offset])).toEqual([[0, 0]])
    expect(b.map(x => [x.piece, x.offset])).toEqual([[0, BLOCK_SIZE], [1, 0], [1, BLOCK_SIZE]])
  })

  it('a piece another peer is sending us is left to it when this peer has rarer pieces', () => {
    // a leecher 'a' has piece 0; a seed 's' has everything. We start piece 0 from 'a'.
    const picker = setup({ availability: '1000', blocksPerPiece: 4 })
    picker.addPeer('s', 'all')
    expect(pieces(picker.pick('p0', 2))).toEqual([0])
    // strict priority would spend the seed on piece 0's last two blocks, which 'a' can send;
    // the seed is the only source of pieces 1-3, so it gets those
    const fromSeed = picker.pick('s', 4)
    expect(pieces(fromSeed)).not.toContain(0)
    expect(fromSeed).toHaveLength(4)
  })

  it('anyone finishes a started piece that nobody is sending', () => {
    const picker = setup({ availability: '1000', blocksPerPiece: 4 })
    picker.addPeer('s', 'all')
    const [b0, b1] = picker.pick('p0', 2)
    expect(picker.blockReceived('p0', b0.piece, b0.offset).accepted).toBe(true)
    picker.requestFailed('p0', b1) // 'a' choked us: piece 0 is half done and idle
    expect(picker.pick('s', 3).map(b => [b.piece, b.offset])).toEqual([[0, BLOCK_SIZE], [0, 2 * BLOCK_SIZE], [0, 3 * BLOCK_SIZE]])
  })

  it('a released partial piece goes back to the rarest-first pool', () => {
    const picker = setup({ availability: '2221', blocksPerPiece: 2 })
    const got = picker.pick('p0', 1) // piece 3, rarest
    expect(got[0].piece).toBe(3)
    picker.requestFailed('p0', got[0])
    expect(picker.inFlight('p0')).toBe(0)
    // p1 lacks piece 3: if it stayed a "partial" nothing would change anyway; p0 gets it again
    expect(picker.pick('p0', 1)[0]).toEqual(got[0])
  })
})

describe('PiecePicker: blocks and sizes', () => {
  it('gets the last piece and last block sizes right', () => {
    const pieceLength = 4 * BLOCK_SIZE
    const totalLength = 2 * pieceLength + BLOCK_SIZE + 100
    const picker = new PiecePicker({ pieceCount: 3, pieceLength, totalLength, random: () => 0 })
    expect(picker.pieceSize(0)).toBe(pieceLength)
    expect(picker.pieceSize(2)).toBe(BLOCK_SIZE + 100)
    expect(picker.blocksOf(2)).toEqual([
      { piece: 2, offset: 0, length: BLOCK_SIZE },
      { piece: 2, offset: BLOCK_SIZE, length: 100 }
    ])
    expect(picker.blocksOf(1)).toHaveLength(4)
    expect(() => picker.pieceSize(3)).toThrow(RangeError)
    picker.addPeer('s', 'all')
    const all = picker.pick('s', 100)
    expect(all).toHaveLength(10)
    expect(all.reduce((sum, b) => sum + b.length, 0)).toBe(totalLength)
    expect(all.find(b => b.piece === 2 && b.offset === BLOCK_SIZE)?.length).toBe(100)
  })

  it('handles a piece shorter than one block and a custom block size', () => {
    const picker = new PiecePicker({ pieceCount: 2, pieceLength: 32768, totalLength: 32768 + 10, blockSize: 8192 })
    expect(picker.blocksOf(0)).toHaveLength(4)
    expect(picker.blocksOf(1)).toEqual([{ piece: 1, offset: 0, length: 10 }])
  })

  it('rejects inconsistent geometry', () => {
    expect(() => new PiecePicker({ pieceCount: 3, pieceLength: BLOCK_SIZE, totalLength: BLOCK_SIZE })).toThrow(RangeError)
    expect(() => new PiecePicker({ pieceCount: 1, pieceLength: BLOCK_SIZE, totalLength: 1, have: new Bitfield(2) })).toThrow(RangeError)
    const empty = new PiecePicker({ pieceCount: 0, pieceLength: BLOCK_SIZE, totalLength: 0 })
    expect(empty.isComplete()).toBe(true)
    expect(empty.endgame).toBe(false)
  })
})

describe('PiecePicker: receiving, failing, releasing', () => {
  it('accepts only blocks requested from that peer, once', () => {
    const picker = setup({ availability: '22', blocksPerPiece: 2 })
    const [blk] = picker.pick('p0', 1)
    expect(picker.blockReceived('p1', blk.piece, blk.offset).accepted).toBe(false) // not asked of p1
    expect(picker.blockReceived('p0', blk.piece, blk.offset + 1).accepted).toBe(false) // not a block offset
    expect(picker.blockReceived('p0', blk.piece, 9 * BLOCK_SIZE).accepted).toBe(false) // past the piece
    expect(picker.blockReceived('p0', 1 - blk.piece, 0).accepted).toBe(false) // never requested
    const r = picker.blockReceived('p0', blk.piece, blk.offset)
    expect(r).toEqual({ accepted: true, cancels: [], pieceComplete: false })
    expect(picker.blockReceived('p0', blk.piece, blk.offset).accepted).toBe(false) // duplicate
    expect(picker.inFlight('p0')).toBe(0)
  })

  it('reports pieceComplete, then pieceVerified sets have', () => {
    const picker = setup({ availability: '1', blocksPerPiece: 3 })
    const blocks = picker.pick('p0', 10)
    expect(blocks).toHaveLength(3)
    expect(picker.inFlight('p0')).toBe(3)
    const results = blocks.map(b => picker.blockReceived('p0', b.piece, b.offset).pieceComplete)
    expect(results).toEqual([false, false, true])
    expect(picker.isComplete()).toBe(false)
    picker.pieceVerified(0)
    expect(picker.have.get(0)).toBe(true)
    expect(picker.isComplete()).toBe(true)
    expect(picker.endgame).toBe(false)
    expect(picker.pick('p0', 10)).toEqual([])
  })

  it('pieceFailed makes every block of the piece missing again', () => {
    const picker = setup({ availability: '11', blocksPerPiece: 2 })
    const blocks = picker.pick('p0', 2)
    expect(pieces(blocks)).toEqual([0])
    for (const b of blocks) picker.blockReceived('p0', b.piece, b.offset)
    picker.pieceFailed(0)
    expect(picker.have.get(0)).toBe(false)
    // piece 0 is an ordinary unstarted piece again, as rare as piece 1; random () => 0 picks 0
    const again = picker.pick('p0', 4)
    expect(again.map(b => [b.piece, b.offset])).toEqual([[0, 0], [0, BLOCK_SIZE], [1, 0], [1, BLOCK_SIZE]])
    expect(picker.blockReceived('p0', 0, 0).accepted).toBe(true)
  })

  it('pieceFailed on a verified piece un-verifies it', () => {
    const picker = setup({ availability: '11', have: '**' })
    expect(picker.isComplete()).toBe(true)
    picker.pieceFailed(1)
    expect(picker.isComplete()).toBe(false)
    expect(picker.isInteresting('p0')).toBe(true)
    expect(pieces(picker.pick('p0', 5))).toEqual([1])
  })

  it('removePeer releases its in-flight blocks to other peers', () => {
    const picker = setup({ availability: '22', blocksPerPiece: 2 })
    const taken = picker.pick('p0', 3)
    expect(taken).toHaveLength(3)
    const released = picker.removePeer('p0')
    expect(released).toEqual(taken)
    expect(picker.inFlight('p0')).toBe(0)
    expect(picker.peerHas('p0', 0)).toBe(false)
    expect(picker.endgame).toBe(false)
    const regained = picker.pick('p1', 10)
    expect(regained).toHaveLength(4)
    expect(picker.removePeer('p0')).toEqual([])
  })

  it('requestFailed makes the block requestable again', () => {
    const picker = setup({ availability: '2', blocksPerPiece: 2 })
    const [a, b] = picker.pick('p0', 2)
    picker.requestFailed('p0', b)
    expect(picker.inFlight('p0')).toBe(1)
    expect(picker.endgame).toBe(false)
    expect(picker.pick('p1', 1)).toEqual([b])
    expect(picker.inFlight('p1')).toBe(1)
    // a late block from p0 after its request failed is dropped
    expect(picker.blockReceived('p0', b.piece, b.offset).accepted).toBe(false)
    expect(picker.blockReceived('p0', a.piece, a.offset).accepted).toBe(true)
  })
})

describe('PiecePicker: endgame', () => {
  it('duplicates requests only when no unrequested block remains, and returns the cancels', () => {
    const picker = setup({ availability: '111', blocksPerPiece: 2 })
    picker.addPeer('b', Bitfield.fromBytes(3, new Uint8Array([0b1100_0000]))) // pieces 0 and 1
    picker.peerHave('d', 2)
    picker.peerHave('e', 2)
    // availability 2 2 3: p0 (a seed) is asked for the rarer pieces 0 and 1
    const fromA = picker.pick('p0', 4)
    picker.addPeer('c', 'all')
    expect(pieces(fromA)).toEqual([0, 1])
    expect(picker.endgame).toBe(false)
    // piece 2 is still unrequested: b may not duplicate p0's requests yet
    expect(picker.pick('b', 10)).toEqual([])
    const fromC = picker.pick('c', 10) // takes the last free blocks, then duplicates
    expect(fromC.slice(0, 2).map(x => x.piece)).toEqual([2, 2])
    expect(picker.endgame).toBe(true)
    expect(fromC.slice(2)).toEqual(fromA) // endgame fill-up with p0's blocks
    // a peer never gets a duplicate of its own request
    expect(picker.pick('p0', 10).map(x => x.piece)).toEqual([2, 2])
    const fromB = picker.pick('b', 10)
    expect(fromB).toEqual(fromA)
    expect(picker.inFlight('b')).toBe(4)

    const got = picker.blockReceived('b', 0, 0)
    expect(got.accepted).toBe(true)
    expect(got.cancels.map(c => c.peerId).sort()).toEqual(['c', 'p0'])
    expect(got.cancels[0].block).toEqual({ piece: 0, offset: 0, length: BLOCK_SIZE })
    expect(picker.inFlight('p0')).toBe(5)
    expect(picker.inFlight('c')).toBe(5)
    // the slower copies arrive later: dropped
    expect(picker.blockReceived('p0', 0, 0).accepted).toBe(false)
    expect(picker.blockReceived('c', 0, 0).accepted).toBe(false)
  })

  it('prefers the least duplicated blocks', () => {
    const picker = setup({ availability: '1', blocksPerPiece: 3 })
    picker.addPeer('b', 'all')
    picker.addPeer('c', 'all')
    picker.pick('p0', 3)
    expect(picker.pick('b', 1)).toEqual([{ piece: 0, offset: 0, length: BLOCK_SIZE }])
    // block 0 now has two requesters: c gets blocks 1 and 2 first
    expect(picker.pick('c', 2).map(x => x.offset)).toEqual([BLOCK_SIZE, 2 * BLOCK_SIZE])
  })

  it('removing the only requester of an endgame block leaves the duplicates in place', () => {
    const picker = setup({ availability: '1', blocksPerPiece: 1 })
    picker.addPeer('b', 'all')
    const [blk] = picker.pick('p0', 1)
    expect(picker.pick('b', 1)).toEqual([blk])
    picker.removePeer('p0')
    expect(picker.endgame).toBe(true) // b still has it in flight
    picker.removePeer('b')
    expect(picker.endgame).toBe(false)
    picker.addPeer('c', 'all')
    expect(picker.pick('c', 1)).toEqual([blk])
  })
})

describe('requestDepth', () => {
  it('is about one second of blocks, clamped to [4, 256]', () => {
    expect(requestDepth(0)).toBe(4)
    expect(requestDepth(-5)).toBe(4)
    expect(requestDepth(Number.NaN)).toBe(4)
    expect(requestDepth(10 * BLOCK_SIZE)).toBe(10)
    expect(requestDepth(1024 * 1024)).toBe(1024 * 1024 / BLOCK_SIZE)
    expect(requestDepth(1e12)).toBe(256)
    expect(requestDepth(Number.POSITIVE_INFINITY)).toBe(256)
    expect(requestDepth(1024 * 1024, 4096)).toBe(256)
    expect(requestDepth(100 * 1024, 8192)).toBe(13)
  })
})

describe('PiecePicker: whole downloads', () => {

  it('completes a download from partial peers with failures and departures', () => {
    const rnd = prng(42)
    const pieceCount = 200
    const pieceLength = 4 * BLOCK_SIZE
    const totalLength = (pieceCount - 1) * pieceLength + 3 * BLOCK_SIZE + 7
    const picker = new PiecePicker({ pieceCount, pieceLength, totalLength, random: rnd })
    const peers = ['a', 'b', 'c', 'd', 'e']
    for (const id of peers) {
      const bf = new Bitfield(pieceCount)
      for (let i = 0; i < pieceCount; i++) if (rnd() < 0.5) bf.set(i)
      picker.addPeer(id, bf)
    }
    picker.addPeer('seed', 'all')
    const received = new Map<number, number>()
    let bytes = 0
    let failedOnce = false
    let rounds = 0
    while (!picker.isComplete()) {
      expect(++rounds).toBeLessThan(10_000)
      for (const id of [...peers, 'seed']) {
        for (const b of picker.pick(id, 8)) {
          if (rnd() < 0.1) { picker.requestFailed(id, b); continue }
          const r = picker.blockReceived(id, b.piece, b.offset)
          if (!r.accepted) continue
          bytes += b.length
          received.set(b.piece, (received.get(b.piece) ?? 0) + 1)
          if (r.pieceComplete) {
            expect(received.get(b.piece)).toBe(picker.blocksOf(b.piece).length)
            received.delete(b.piece)
            if (!failedOnce && b.piece % 7 === 3) {
              failedOnce = true
              bytes -= picker.pieceSize(b.piece)
              picker.pieceFailed(b.piece)
            } else {
              picker.pieceVerified(b.piece)
            }
          }
        }
      }
      if (rounds === 5) expect(picker.removePeer('a')).toEqual([])
    }
    expect(failedOnce).toBe(true)
    expect(bytes).toBe(totalLength)
    for (const id of peers) expect(picker.inFlight(id)).toBe(0)
  })

  it('scans eight pieces a step: every piece once, none past the last, only what the peer has', () => {
    const random = prng(7)
    for (const pieceCount of [1, 7, 8, 9, 13, 16, 17, 63]) {
      const picker = new PiecePicker({ pieceCount, pieceLength: BLOCK_SIZE, totalLength: pieceCount * BLOCK_SIZE, random })
      const partial = new Bitfield(pieceCount)
      for (let i = 0; i < pieceCount; i++) if (random() < 0.5) partial.set(i)
      picker.addPeer('partial', partial)
      picker.addPeer('seed', 'all')
      const fromPartial = pieces(picker.pick('partial', pieceCount))
      expect(fromPartial.every(p => partial.get(p))).toBe(true)
      expect(fromPartial).toHaveLength(partial.count())
      // (no more than are left: past that, endgame duplicates)
      const fromSeed = pieces(picker.pick('seed', pieceCount - fromPartial.length))
      expect([...fromPartial, ...fromSeed].sort((a, b) => a - b)).toEqual(Array.from({ length: pieceCount }, (_, i) => i))
    }
  })

  it('stays fast with 65536 pieces and thousands of picks', () => {
    const pieceCount = 65536
    const picker = new PiecePicker({ pieceCount, pieceLength: BLOCK_SIZE, totalLength: pieceCount * BLOCK_SIZE, random: () => 0.5 })
    for (let p = 0; p < 20; p++) {
      const bf = new Bitfield(pieceCount)
      for (let i = p; i < pieceCount; i += 3) bf.set(i)
      picker.addPeer(`p${p}`, bf)
    }
    picker.addPeer('seed', 'all')
    const start = performance.now()
    let n = 0
    for (let k = 0; k < 1000; k++) {
      const id = k % 2 === 0 ? 'seed' : `p${k % 20}`
      for (const b of picker.pick(id, 16)) {
        n++
        if (picker.blockReceived(id, b.piece, b.offset).pieceComplete) picker.pieceVerified(b.piece)
      }
    }
    const ms = performance.now() - start
    expect(n).toBe(1000 * 16)
    expect(picker.have.count()).toBe(n)
    // O(pieces) per pick, about 1 ms here on a slow box; generous bound against CI noise
    expect(ms).toBeLessThan(10_000)
  })
})

describe('PiecePicker: a piece that failed is fetched from one peer (issue 10, ban framing)', () => {
  it('after pieceFailed, while one peer has blocks of it in flight, other peers are not given any', () => {
    const picker = setup({ availability: '22', blocksPerPiece: 4 })
    // p0 and p1 share piece 0, and it fails
    const a = picker.pick('p0', 2)
    const b = picker.pick('p1', 2)
    expect(pieces(a)).toEqual([0])
    expect(pieces(b)).toEqual([0])
    for (const x of a) picker.blockReceived('p0', x.piece, x.offset)
    for (const x of b) picker.blockReceived('p1', x.piece, x.offset)
    picker.pieceFailed(0)
    // p1 starts it again with two blocks: p0 gets none of piece 0, only piece 1
    expect(picker.pick('p1', 2).map(x => [x.piece, x.offset])).toEqual([[0, 0], [0, BLOCK_SIZE]])
    expect(pieces(picker.pick('p0', 8))).toEqual([1])
    // the rest of piece 0 goes to p1 as well
    expect(picker.pick('p1', 8).filter(x => x.piece === 0).map(x => x.offset)).toEqual([2 * BLOCK_SIZE, 3 * BLOCK_SIZE])
  })

  it('when that peer lets go of it (reject, choke, timeout), another may take it over', () => {
    const picker = setup({ availability: '22', blocksPerPiece: 2 })
    picker.pieceFailed(0)
    const taken = picker.pick('p0', 1)
    expect(taken.map(x => [x.piece, x.offset])).toEqual([[0, 0]])
    for (const x of taken) picker.requestFailed('p0', x)
    expect(picker.pick('p1', 2).map(x => [x.piece, x.offset])).toEqual([[0, 0], [0, BLOCK_SIZE]])
  })

  it('no endgame duplicates of a refetched piece, and once verified it is ordinary again', () => {
    const picker = setup({ availability: '2', blocksPerPiece: 2 })
    picker.pieceFailed(0)
    expect(picker.pick('p0', 2)).toHaveLength(2)
    expect(picker.endgame).toBe(true)
    expect(picker.pick('p1', 2)).toEqual([])
    for (const x of [0, BLOCK_SIZE]) picker.blockReceived('p0', 0, x)
    picker.pieceVerified(0)
    picker.pieceFailed(0) // (a verified piece found bad on disk)
    expect(picker.pick('p1', 1)).toHaveLength(1)
  })
})

describe('PiecePicker: memory budget for pieces being assembled (issue 10, partial pieces)', () => {
  it('starts no new piece past maxActiveBytes, but always allows one', () => {
    const bpp = 4
    const picker = new PiecePicker({ pieceCount: 8, pieceLength: bpp * BLOCK_SIZE, totalLength: 8 * bpp * BLOCK_SIZE, randomFirstPieces: 0, random: () => 0, maxActiveBytes: 2 * bpp * BLOCK_SIZE })
    picker.addPeer('p0', 'all')
    const got = picker.pick('p0', 100)
    expect(pieces(got)).toHaveLength(2)
    expect(picker.activePieces).toBe(2)
    expect(picker.activePieceBytes).toBe(2 * bpp * BLOCK_SIZE)
    // every block but the last of both pieces arrives; the last ones never do
    for (const x of got) if (x.offset !== (bpp - 1) * BLOCK_SIZE) picker.blockReceived('p0', x.piece, x.offset)
    expect(picker.pick('p0', 100)).toEqual([])
    // one verifies: room for one more
    for (const x of got) if (x.piece === got[0].piece && x.offset === (bpp - 1) * BLOCK_SIZE) picker.blockReceived('p0', x.piece, x.offset)
    picker.pieceVerified(got[0].piece)
    expect(pieces(picker.pick('p0', 100))).toHaveLength(1)
    expect(picker.activePieces).toBe(2)

    const tiny = new PiecePicker({ pieceCount: 2, pieceLength: bpp * BLOCK_SIZE, totalLength: 2 * bpp * BLOCK_SIZE, maxActiveBytes: 1 })
    tiny.addPeer('p0', 'all')
    expect(pieces(tiny.pick('p0', 100))).toHaveLength(1)
  })

  it('a failed piece gives its budget back', () => {
    const picker = new PiecePicker({ pieceCount: 4, pieceLength: BLOCK_SIZE, totalLength: 4 * BLOCK_SIZE, random: () => 0, maxActiveBytes: BLOCK_SIZE })
    picker.addPeer('p0', 'all')
    const [x] = picker.pick('p0', 10)
    expect(picker.pick('p0', 10)).toEqual([])
    picker.blockReceived('p0', x.piece, x.offset)
    picker.pieceFailed(x.piece)
    expect(picker.activePieceBytes).toBe(0)
    expect(picker.pick('p0', 10)).toHaveLength(1)
  })
})

describe('PiecePicker: a selection of files (wanted pieces)', () => {
  const bits = (n: number, set: number[]): Bitfield => {
    const b = new Bitfield(n)
    for (const i of set) b.set(i)
    return b
  }

  it('never requests a piece we do not want, and is complete when the wanted ones are', async () => {
    const picker = new PiecePicker({ pieceCount: 4, pieceLength: BLOCK_SIZE, totalLength: 4 * BLOCK_SIZE, randomFirstPieces: 0, random: () => 0, wanted: bits(4, [1, 3]) })
    picker.addPeer('seed', 'all')
    expect(picker.isInteresting('seed')).toBe(true)
    const blocks = picker.pick('seed', 10)
    expect(blocks.map(b => b.piece).sort()).toEqual([1, 3])
    expect(picker.piecesLeft).toBe(2)
    for (const b of blocks) {
      picker.blockReceived('seed', b.piece, b.offset)
      picker.pieceVerified(b.piece)
    }
    expect(picker.isComplete()).toBe(true)
    expect(picker.have.isComplete()).toBe(false)
    expect(picker.isInteresting('seed')).toBe(false)
    expect(picker.endgame).toBe(false)
  })

  it('a peer with only unwanted pieces is not interesting; a have of a wanted one makes it so', () => {
    const picker = new PiecePicker({ pieceCount: 4, pieceLength: BLOCK_SIZE, totalLength: 4 * BLOCK_SIZE, wanted: bits(4, [2]) })
    picker.addPeer('p', bits(4, [0, 1]))
    expect(picker.isInteresting('p')).toBe(false)
    expect(picker.pick('p', 10)).toEqual([])
    picker.peerHave('p', 2)
    expect(picker.isInteresting('p')).toBe(true)
  })

  it('a verified unwanted piece (a partial seeder resuming) changes nothing we need', () => {
    const picker = new PiecePicker({ pieceCount: 3, pieceLength: BLOCK_SIZE, totalLength: 3 * BLOCK_SIZE, wanted: bits(3, [0]) })
    picker.pieceVerified(2)
    expect(picker.piecesLeft).toBe(1)
    picker.pieceFailed(2)
    expect(picker.piecesLeft).toBe(1)
    picker.addPeer('seed', 'all')
    expect(picker.pick('seed', 10).map(b => b.piece)).toEqual([0])
  })
})

describe('PiecePicker: pieces of different sizes (a folder: every file starts a piece)', () => {
  // files of 1.5, 0.25 and 1 pieces: sizes [P, P/2, P/4, P]
  const P = 4 * BLOCK_SIZE
  const sizes = [P, P / 2, P / 4, P]

  it('asks for the blocks each piece really has', () => {
    const picker = new PiecePicker({ pieceCount: 4, pieceLength: P, totalLength: sizes.reduce((a, b) => a + b), randomFirstPieces: 0, random: () => 0, pieceSize: i => sizes[i] })
    expect(sizes.map((_, i) => picker.blockCount(i))).toEqual([4, 2, 1, 4])
    picker.addPeer('seed', 'all')
    const blocks = picker.pick('seed', 100)
    expect(blocks).toHaveLength(11)
    for (const b of blocks) expect(b.offset + b.length).toBeLessThanOrEqual(sizes[b.piece])
  })

  it('refuses sizes that do not add up or exceed pieceLength', () => {
    expect(() => new PiecePicker({ pieceCount: 2, pieceLength: P, totalLength: P, pieceSize: () => P })).toThrow(/add up/)
    expect(() => new PiecePicker({ pieceCount: 1, pieceLength: P, totalLength: 2 * P, pieceSize: () => 2 * P })).toThrow(/invalid size/)
  })
})

describe('PiecePicker: equally rare pieces split among the downloaders (stripes)', () => {
  /** 12 pieces of 2 blocks, a seed 's', downloaders 'a' and 'c' with nothing yet, and us ('b'). */
  function striped (random: () => number = prng(7)): PiecePicker {
    const n = 12
    const picker = new PiecePicker({ pieceCount: n, pieceLength: 2 * BLOCK_SIZE, totalLength: n * 2 * BLOCK_SIZE, randomFirstPieces: 0, random, selfId: 'b' })
    picker.addPeer('s', 'all')
    picker.addPeer('a', 'none')
    picker.addPeer('c', 'none')
    return picker
  }

  it('takes the pieces of its own stripe first: ids sorted a, b, c, so b takes piece ≡ 1 (mod 3)', () => {
    const picker = striped()
    const first = pieces(picker.pick('s', 8))
    expect(first.sort((x, y) => x - y)).toEqual([1, 4, 7, 10])
    // its stripe done, it goes on with the others' rather than wait
    expect(pieces(picker.pick('s', 2))).toHaveLength(1)
  })

  it('never makes two downloaders of one seed take the same piece while both have stripes left', () => {
    // three pickers, one per downloader, each seeing the same peers
    const ids = ['a', 'b', 'c']
    const picks = ids.map((self, k) => {
      const picker = new PiecePicker({ pieceCount: 12, pieceLength: 2 * BLOCK_SIZE, totalLength: 12 * 2 * BLOCK_SIZE, randomFirstPieces: 0, random: prng(k + 1), selfId: self })
      picker.addPeer('s', 'all')
      for (const other of ids) if (other !== self) picker.addPeer(other, 'none')
      return pieces(picker.pick('s', 8))
    })
    const all = picks.flat()
    expect(new Set(all).size).toBe(all.length)
  })

  it('rarity still comes first: a rarer piece outside the stripe beats a commoner one inside', () => {
    const picker = striped()
    // every piece but 0 is also held by a downloader: 0 is the rarest, though in a's stripe
    const bf = new Bitfield(12)
    for (let i = 1; i < 12; i++) bf.set(i)
    picker.addPeer('a', bf)
    expect(pieces(picker.pick('s', 2))).toEqual([0])
  })

  it('a downloader that completes, or leaves, no longer holds a stripe', () => {
    const picker = striped(() => 0.99)
    // c leaves; a gets every piece: we are alone, any piece will do (the injected random picks)
    picker.removePeer('c')
    const full = new Bitfield(12)
    for (let i = 0; i < 12; i++) full.set(i)
    picker.addPeer('a', full)
    // 0.99 of the 12 candidates: the last, piece 11 (in b's stripe of three it would be 10)
    expect(pieces(picker.pick('s', 2))).toEqual([11])
    // and by haves: a picker that sees 'a' complete piece by piece splits with 'c' only
    const byHaves = striped()
    for (let i = 0; i < 12; i++) byHaves.peerHave('a', i)
    // ids b, c: b takes the even pieces
    expect(pieces(byHaves.pick('s', 8)).every(p => p % 2 === 0)).toBe(true)
  })
})
