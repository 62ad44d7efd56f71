/**
 * PieceAssembly over the in-memory store and a real picker, no network: blocks become pieces,
 * pieces are checked, and bad data is blamed on whoever provably sent it (smart-ban.ts).
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it, vi } from 'vitest'
import { pieceCount } from '../../src/manifest/manifest.js'
import { BLOCK_SIZE, PiecePicker, type BlockReceivedResult } from '../../src/picker/picker.js'
import type { BlockSpec } from '../../src/wire/codec.js'
import { openMemoryDownloadStore, type MemoryPieceStore } from '../../src/storage/memory-store.js'
import { PieceAssembly, type PieceAssemblyInit } from '../../src/swarm/assembly.js'
import { SmartBan } from '../../src/swarm/smart-ban.js'
import { manifestOf, testBytes } from '../storage/conformance.js'

const B = BLOCK_SIZE
const PIECE = 4 * B
// six pieces of four blocks; the last has two, the second of them 1000 bytes
const data = testBytes(5 * PIECE + B + 1000)
const manifest = manifestOf(data, PIECE)
const LAST = pieceCount(manifest) - 1

const bytesOf = (ref: BlockSpec): Uint8Array => data.subarray(ref.piece * PIECE + ref.offset, ref.piece * PIECE + ref.offset + ref.length)
const pieceBytes = (piece: number): Uint8Array => data.subarray(piece * PIECE, Math.min(data.length, (piece + 1) * PIECE))
const garbage = (ref: BlockSpec): Uint8Array => new Uint8Array(ref.length).fill(0xee)
const of = (refs: BlockSpec[], piece: number): BlockSpec[] => refs.filter(r => r.piece === piece)

interface Harness {
  asm: PieceAssembly
  picker: PiecePicker
  store: MemoryPieceStore
  /** what the swarm was told, in order */
  events: string[]
  logs: string[]
  /** pieces the picker still had active when a peer's session was closed */
  activeAtClose: number[]
  /** the buffer handed to each writePiece, in order */
  writes: () => Array<{ piece: number, buf: Uint8Array }>
  /** a block off the wire (in two chunks, as a frame may be); a complete piece is checked at once */
  deliver: (peer: string, ref: BlockSpec, bytes?: Uint8Array) => Promise<BlockReceivedResult>
}

function setup (init: Partial<Pick<PieceAssemblyInit, 'maxStrikes' | 'spareBufferBytes' | 'smartBan'>> = {}): Harness {
  const store = openMemoryDownloadStore(manifest)
  const write = vi.spyOn(store, 'writePiece')
  // random 0: the picker's choices are the same on every run
  const picker = new PiecePicker({ pieceCount: pieceCount(manifest), pieceLength: PIECE, totalLength: data.length, random: () => 0 })
  const events: string[] = []
  const logs: string[] = []
  const activeAtClose: number[] = []
  const asm = new PieceAssembly({
    manifest,
    store,
    picker,
    log: (m) => logs.push(m),
    ...init,
    delegate: {
      pieceVerified: (p) => { events.push(`verified ${p}`) },
      pieceFailed: (p) => { events.push(`failed ${p}`) },
      peerBanned: (peer) => { events.push(`banned ${peer}`) },
      // as the swarm's session does: a closed session's requests go back to the picker at once
      closePeer: (peer, reason) => {
        activeAtClose.push(picker.activePieces)
        events.push(`close ${peer}: ${reason}`)
        picker.removePeer(peer)
      },
      error: (err) => { events.push(`error ${err.message}`) }
    }
  })
  const deliver = async (peer: string, ref: BlockSpec, bytes = bytesOf(ref)): Promise<BlockReceivedResult> => {
    const half = Math.floor(bytes.byteLength / 2)
    const r = asm.receive(peer, ref.piece, ref.offset, new Uint8ArrayList(bytes.subarray(0, half), bytes.subarray(half)))
    if (r.pieceComplete) await asm.check(ref.piece)
    return r
  }
  const writes = (): Array<{ piece: number, buf: Uint8Array }> => write.mock.calls.map(([piece, buf]) => ({ piece, buf: buf as Uint8Array }))
  return { asm, picker, store, events, logs, activeAtClose, writes, deliver }
}

async function stored (store: MemoryPieceStore, piece: number): Promise<boolean> {
  return Buffer.from(await store.readPiece(piece)).equals(pieceBytes(piece))
}

describe('PieceAssembly: assembling', () => {
  it('blocks arriving in any order become a verified piece, written to the store once', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    const refs = of(h.picker.pick('a', 100), 2)
    expect(refs).toHaveLength(4)
    for (const i of [2, 0, 3]) expect(await h.deliver('a', refs[i])).toMatchObject({ accepted: true, pieceComplete: false })
    // nothing is written or announced before the last block
    expect(h.asm.assembling).toBe(1)
    expect(h.writes()).toEqual([])
    expect(h.events).toEqual([])

    expect(await h.deliver('a', refs[1])).toMatchObject({ accepted: true, pieceComplete: true })
    expect(h.events).toEqual(['verified 2'])
    expect(h.writes().map(w => w.piece)).toEqual([2])
    expect(await stored(h.store, 2)).toBe(true)
    // the picker heard first: the swarm announces a piece the picker already has
    expect(h.picker.have.get(2)).toBe(true)
    expect(h.asm.assembling).toBe(0)
    expect(h.asm.wasted).toBe(0)
    expect(h.asm.hashFailures).toBe(0)
    expect(h.logs).toEqual([])
  })

  it('the last, short piece is assembled in a buffer of its own size, which is not kept', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    const refs = of(h.picker.pick('a', 100), LAST)
    expect(refs.map(r => r.length)).toEqual([B, 1000])
    await h.deliver('a', refs[1])
    await h.deliver('a', refs[0])
    expect(h.events).toEqual([`verified ${LAST}`])
    expect(h.writes()[0].buf.byteLength).toBe(B + 1000)
    expect(await stored(h.store, LAST)).toBe(true)
    expect(h.asm.spares).toBe(0)
  })

  it('settled() waits for the pieces being checked', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    const refs = of(h.picker.pick('a', 100), 1)
    for (const ref of refs) h.asm.receive('a', ref.piece, ref.offset, new Uint8ArrayList(bytesOf(ref)))
    void h.asm.check(1)
    await h.asm.settled()
    expect(h.events).toEqual(['verified 1'])
    expect(await stored(h.store, 1)).toBe(true)
  })

  it('a write that fails is reported to the swarm, and the piece is not marked had', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    await h.store.close()
    for (const ref of of(h.picker.pick('a', 100), 0)) await h.deliver('a', ref)
    expect(h.events).toEqual(['error memory:file.bin: store is closed'])
    expect(h.picker.have.get(0)).toBe(false)
  })
})

describe('PieceAssembly: duplicates and late blocks', () => {
  it('endgame duplicates count as wasted and are not written: the first copy of a block is the one kept', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    h.picker.addPeer('b', 'all')
    const fromA = of(h.picker.pick('a', 100), 0)
    expect(h.picker.endgame).toBe(true)
    const fromB = of(h.picker.pick('b', 100), 0)
    expect(fromB).toEqual(fromA)

    const first = await h.deliver('a', fromA[0])
    expect(first.accepted).toBe(true)
    expect(first.cancels).toEqual([{ peerId: 'b', block: fromB[0] }])
    // b's copy arrives after all, and is garbage: dropped, not copied over a's
    expect((await h.deliver('b', fromB[0], garbage(fromB[0]))).accepted).toBe(false)
    expect(h.asm.wasted).toBe(B)
    expect((await h.deliver('b', fromB[1])).accepted).toBe(true)
    expect((await h.deliver('a', fromA[1])).accepted).toBe(false)
    expect(h.asm.wasted).toBe(2 * B)

    await h.deliver('a', fromA[2])
    await h.deliver('a', fromA[3])
    expect(h.events).toEqual(['verified 0'])
    expect(h.writes().map(w => w.piece)).toEqual([0])
    expect(await stored(h.store, 0)).toBe(true)
    expect(h.asm.hashFailures).toBe(0)
  })

  it('a block of a piece that was already verified is ignored (and counted as wasted)', async () => {
    const h = setup()
    h.picker.addPeer('a', 'all')
    h.picker.addPeer('b', 'all')
    const fromA = of(h.picker.pick('a', 100), 3)
    const fromB = of(h.picker.pick('b', 100), 3)
    for (const ref of fromA) await h.deliver('a', ref)
    expect(h.events).toEqual(['verified 3'])

    const late = await h.deliver('b', fromB[2], garbage(fromB[2]))
    expect(late).toEqual({ accepted: false, cancels: [], pieceComplete: false })
    expect(h.asm.wasted).toBe(B)
    expect(h.asm.assembling).toBe(0)
    // checking it again does nothing: it holds no buffer
    await h.asm.check(3)
    expect(h.events).toEqual(['verified 3'])
    expect(h.writes()).toHaveLength(1)
    expect(await stored(h.store, 3)).toBe(true)
  })
})

describe('PieceAssembly: buffers', () => {
  it('full-size buffers are reused once their piece is written, and at most spareBufferBytes of them are kept', async () => {
    const h = setup({ spareBufferBytes: 2 * PIECE })
    h.picker.addPeer('a', 'all')
    const refs = h.picker.pick('a', 100)
    // three pieces assembled at once: three buffers
    for (const p of [0, 1, 2]) for (const ref of of(refs, p)) h.asm.receive('a', p, ref.offset, new Uint8ArrayList(bytesOf(ref)))
    expect(h.asm.assembling).toBe(3)
    await Promise.all([0, 1, 2].map(async p => { await h.asm.check(p) }))
    const first = h.writes().map(w => w.buf)
    expect(new Set(first).size).toBe(3)
    expect(h.asm.assembling).toBe(0)
    expect(h.asm.spares).toBe(2)

    // the next pieces are assembled in those buffers: stale bytes and all, every one is overwritten
    for (const p of [3, 4]) for (const ref of of(refs, p)) await h.deliver('a', ref)
    const next = h.writes().slice(3).map(w => w.buf)
    for (const buf of next) expect(first).toContain(buf)
    expect(h.asm.spares).toBe(2)
    for (const p of [0, 1, 2, 3, 4]) expect(await stored(h.store, p)).toBe(true)
    // the first three were checked at once: any of them may have finished first
    expect([...h.events].sort()).toEqual(['verified 0', 'verified 1', 'verified 2', 'verified 3', 'verified 4'])
  })

  it('a failed piece gives its buffer back too', async () => {
    const h = setup()
    h.picker.addPeer('evil', 'all')
    for (const ref of of(h.picker.pick('evil', 100), 0)) await h.deliver('evil', ref, garbage(ref))
    expect(h.asm.hashFailures).toBe(1)
    expect(h.asm.assembling).toBe(0)
    expect(h.asm.spares).toBe(1)
  })
})

describe('PieceAssembly: bad data and bans', () => {
  it('mixed senders of a failed piece: nobody is blamed until the piece, fetched again from one peer, verifies; then only the framer, and on the second piece it is banned', async () => {
    const smartBan = new SmartBan()
    const h = setup({ smartBan })
    h.picker.addPeer('framer', 'all')
    h.picker.addPeer('honest', 'all')
    // the framer is asked for one block of a piece, the honest peer for the rest; twice over
    const [bad1] = h.picker.pick('framer', 1)
    const good1 = h.picker.pick('honest', 3)
    const [bad2] = h.picker.pick('framer', 1)
    const good2 = h.picker.pick('honest', 3)
    const P = bad1.piece
    const Q = bad2.piece
    expect(P).not.toBe(Q)
    expect(good1.every(r => r.piece === P)).toBe(true)
    expect(good2.every(r => r.piece === Q)).toBe(true)

    await h.deliver('framer', bad1, garbage(bad1))
    for (const ref of good1) await h.deliver('honest', ref)
    await h.deliver('framer', bad2, garbage(bad2))
    for (const ref of good2) await h.deliver('honest', ref)

    // both failed; the picker wants them again, and nobody was blamed yet
    expect(h.events).toEqual([`failed ${P}`, `failed ${Q}`])
    expect(h.logs).toEqual([
      `piece ${P} failed its hash check (blocks from framer, honest); fetching it again from one peer, to find whose blocks were bad`,
      `piece ${Q} failed its hash check (blocks from framer, honest); fetching it again from one peer, to find whose blocks were bad`
    ])
    expect(h.asm.hashFailures).toBe(2)
    expect(h.asm.wasted).toBe(2 * PIECE)
    expect(h.picker.have.get(P)).toBe(false)
    expect(smartBan.pending).toBe(2)
    expect(h.writes()).toEqual([])

    // fetched again, all from the honest peer: its blocks match, the framer's did not
    const again = h.picker.pick('honest', 100)
    expect(of(again, P)).toHaveLength(4)
    expect(of(again, Q)).toHaveLength(4)
    for (const ref of of(again, P)) await h.deliver('honest', ref)
    expect(h.events.slice(2)).toEqual([`close framer: sent a bad block of piece ${P}`, `verified ${P}`])
    expect(h.asm.banned.size).toBe(0)

    for (const ref of of(again, Q)) await h.deliver('honest', ref)
    expect(h.events.slice(4)).toEqual(['banned framer', `close framer: banned: sent a bad block of piece ${Q}`, `verified ${Q}`])
    expect(h.logs.slice(2)).toEqual([`banning framer: 2 pieces with bad data (last: sent a bad block of piece ${Q})`])
    expect([...h.asm.banned]).toEqual(['framer'])
    expect(h.events.join('\n')).not.toContain('honest')
    expect(smartBan.pending).toBe(0)
    expect(await stored(h.store, P)).toBe(true)
    expect(await stored(h.store, Q)).toBe(true)
  })

  it('the lone sender of a failed piece is struck at once, after the picker wants the piece again and before more is requested', async () => {
    const h = setup()
    h.picker.addPeer('evil', 'all')
    const first = h.picker.pick('evil', 4)
    const P = first[0].piece
    for (const ref of first) await h.deliver('evil', ref, garbage(ref))
    expect(h.events).toEqual([`close evil: sent all of piece ${P}, which failed verification`, `failed ${P}`])
    expect(h.logs).toEqual([`piece ${P} failed its hash check (blocks from evil); fetching it again`])
    // the picker had already dropped the failed piece when the session was closed
    expect(h.activeAtClose).toEqual([0])
    expect(h.asm.banned.size).toBe(0)

    // it comes back and does it again: the second strike bans it
    h.picker.addPeer('evil', 'all')
    const second = h.picker.pick('evil', 4)
    const Q = second[0].piece
    for (const ref of second) await h.deliver('evil', ref, garbage(ref))
    expect(h.events.slice(2)).toEqual(['banned evil', `close evil: banned: sent all of piece ${Q}, which failed verification`, `failed ${Q}`])
    expect(h.logs.slice(1)).toEqual([
      `piece ${Q} failed its hash check (blocks from evil); fetching it again`,
      `banning evil: 2 pieces with bad data (last: sent all of piece ${Q}, which failed verification)`
    ])
    expect([...h.asm.banned]).toEqual(['evil'])
  })

  it('maxStrikes 1 bans at the first bad piece; long peer ids are shortened in the log', async () => {
    const h = setup({ maxStrikes: 1 })
    const evil = '12D3KooWEvilPeerWithALongId'
    h.picker.addPeer(evil, 'all')
    const refs = h.picker.pick(evil, 4)
    for (const ref of refs) await h.deliver(evil, ref, garbage(ref))
    const P = refs[0].piece
    expect(h.events).toEqual([`banned ${evil}`, `close ${evil}: banned: sent all of piece ${P}, which failed verification`, `failed ${P}`])
    expect(h.logs).toEqual([
      `piece ${P} failed its hash check (blocks from …hALongId); fetching it again`,
      `banning …hALongId: 1 pieces with bad data (last: sent all of piece ${P}, which failed verification)`
    ])
  })
})
