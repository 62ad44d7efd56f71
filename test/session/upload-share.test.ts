/**
 * Issue 9: "a capped uplink is shared evenly among the unchoked peers, whatever their request
 * depth". One seeder, several real PeerSessions (over in-memory stream pairs, and once over real
 * libp2p nodes), one Throttle shared by all of them as the swarm does; each leecher keeps its own
 * number of requests outstanding.
 */
import type { Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { createNode, type BitswarmNode } from '../../src/node.js'
import { PeerSession, type SessionDelegate, type SessionGeometry } from '../../src/session/session.js'
import { Throttle } from '../../src/throttle.js'
import type { BlockSpec } from '../../src/wire/codec.js'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 64 * KiB
const PIECE = 4 * BLOCK
const PIECES = 4096
const MANIFEST = Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...Array.from({ length: 32 }, (_, i) => (i * 41) & 0xff)])
const geometry: SessionGeometry = { manifest: MANIFEST, pieceCount: PIECES, pieceSize: () => PIECE }
/** every block's content: the bytes do not matter here, only how many go to whom */
const ZEROS = new Uint8Array(BLOCK)

/** The seeder's side: holds everything, reads instantly, notes when it wrote how many bytes. */
function seederDelegate (uploads: Array<[number, number]>): SessionDelegate {
  const nop = (): void => {}
  return {
    onHaveState: nop, onHave: nop, onInterest: nop, onChoke: nop, onUnchoke: nop, onBlock: nop, onReject: nop,
    onPeers: nop, onClose: nop,
    onUpload: (_s, bytes) => { uploads.push([Date.now(), bytes]) },
    hasPiece: () => true,
    readBlock: async (_p, _o, length) => ZEROS.subarray(0, length)
  }
}

interface Leecher {
  delegate: SessionDelegate
  /** [ms, bytes] of every block received */
  readonly arrivals: Array<[number, number]>
  haveState: boolean
}

/**
 * A leecher that keeps `depth` requests of `blockSize` bytes outstanding: a new one for each
 * block received, after `rttMs` (the time its request takes to reach the seeder).
 */
function leecher (depth: number, blockSize: number, rttMs: number, timers: Set<ReturnType<typeof setTimeout>>): Leecher {
  let next = 0
  const request = (s: PeerSession, n: number): void => {
    const blocks: BlockSpec[] = []
    for (let i = 0; i < n; i++, next++) {
      const perPiece = PIECE / blockSize
      blocks.push({ piece: Math.floor(next / perPiece) % PIECES, offset: (next % perPiece) * blockSize, length: blockSize })
    }
    if (rttMs === 0) { s.request(blocks); return }
    const t = setTimeout(() => { timers.delete(t); if (!s.closed) s.request(blocks) }, rttMs)
    timers.add(t)
  }
  const nop = (): void => {}
  const l: Leecher = {
    arrivals: [],
    haveState: false,
    delegate: {
      onHaveState: () => { l.haveState = true },
      onHave: nop, onInterest: nop, onChoke: nop, onReject: nop, onPeers: nop, onClose: nop, onUpload: nop,
      onUnchoke: (s) => { request(s, depth) },
      onBlock: (s, _piece, _offset, data: Uint8ArrayList) => {
        l.arrivals.push([Date.now(), data.byteLength])
        request(s, 1)
      },
      hasPiece: () => false,
      readBlock: async () => { throw new Error('a leecher uploads nothing') }
    }
  }
  return l
}

const streams: Stream[] = []
const timers = new Set<ReturnType<typeof setTimeout>>()

afterEach(() => {
  for (const t of timers) clearTimeout(t)
  timers.clear()
  for (const s of streams.splice(0)) s.abort(new Error('test over'))
})

/** the muxer's side of a stream (@libp2p/utils' AbstractStream): what yamux calls on window changes */
interface Muxed {
  onMuxerNeedsDrain: () => void
  onMuxerDrain: () => void
}

/** how a seeder's session and a leecher's are connected, and how their link is made to stall */
interface Links {
  pair: () => Promise<[Stream, Stream]>
  /** what makes the link stall and recover, where the test can do it */
  stall?: (seeder: Stream, leecher: Stream) => [() => void, () => void]
}

const memoryLinks: Links = {
  pair: async () => await streamPair(),
  // as when yamux's send window is spent: the seeder's stream buffers what is sent and asks for
  // drain (the in-memory pair has no window of its own)
  stall: (seeder) => [() => { (seeder as unknown as Muxed).onMuxerNeedsDrain() }, () => { (seeder as unknown as Muxed).onMuxerDrain() }]
}

/** Real nodes (TCP + Noise + Yamux on 127.0.0.1): one seeder, a node per leecher. */
async function libp2pLinks (): Promise<Links & { stop: () => Promise<void> }> {
  const nodes: BitswarmNode[] = []
  const node = async (): Promise<BitswarmNode> => {
    const n = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    nodes.push(n)
    await n.start()
    return n
  }
  const seeder = await node()
  const inbound: Stream[] = []
  await seeder.handle(PROTOCOL, (stream) => { inbound.push(stream) })
  return {
    pair: async () => {
      const leecher = await node()
      const stream = await leecher.dialProtocol(seeder.getMultiaddrs(), PROTOCOL)
      await vi.waitFor(() => { expect(inbound.length).toBeGreaterThan(0) })
      return [inbound.shift() as Stream, stream]
    },
    // (no stall: a leecher that pauses its stream does not stall the link soon, yamux keeps
    // opening its window, up to 16 MiB, while the reader is paused)
    stop: async () => { await Promise.all(nodes.map(async n => { await Promise.resolve(n.stop()) })) }
  }
}

const PROTOCOL = '/bitswarm-test/upload-share/1.0.0'

interface Run {
  /** bytes each leecher received from `from` to `to` ms after the start, and its total rate */
  window: (from: number, to: number) => Window
}

interface Window {
  /** bytes each leecher received */
  bytes: number[]
  /** bytes the seeder wrote to each session's stream (took tokens for) */
  written: number[]
  /** bytes per second received in all */
  rate: number
}

interface PeerPlan {
  /** requests the leecher keeps outstanding */
  depth: number
  blockSize?: number
  /** delay before each new request reaches the seeder */
  rttMs?: number
  /** when the seeder unchokes it and it starts asking (ms after the start) */
  startMs?: number
  /** from and to (ms after the start): the link to it stalls */
  stall?: [number, number]
}

/**
 * One seeder uploads to a leecher per entry of `peers` through one Throttle of `rate`, for
 * `ms`; then every session is closed and what arrived when is returned.
 */
async function run (rate: number, peers: PeerPlan[], ms: number, links: Links = memoryLinks): Promise<Run> {
  const throttle = new Throttle({ rate })
  const leechers: Leecher[] = []
  const seeders: PeerSession[] = []
  const sessions: PeerSession[] = []
  const uploads: Array<Array<[number, number]>> = []
  for (const [i, p] of peers.entries()) {
    const [a, b] = await links.pair()
    streams.push(a, b)
    const written: Array<[number, number]> = []
    uploads.push(written)
    const seeder = new PeerSession({
      stream: a, remotePeer: `12D3KooWLeecher${i}`, geometry, delegate: seederDelegate(written), throttle,
      localHave: () => Bitfield.full(PIECES), log: () => {}
    })
    const l = leecher(p.depth, p.blockSize ?? BLOCK, p.rttMs ?? 0, timers)
    const session = new PeerSession({
      stream: b, remotePeer: '12D3KooWSeeder', geometry, delegate: l.delegate,
      localHave: () => new Bitfield(PIECES), log: () => {}
    })
    seeder.start()
    session.start()
    leechers.push(l)
    seeders.push(seeder)
    sessions.push(session)
  }
  await vi.waitFor(() => { expect(leechers.every(l => l.haveState)).toBe(true) }, { interval: 2, timeout: 3_000 })
  const start = Date.now()
  const at = (ms: number, f: () => void): void => {
    const t = setTimeout(() => { timers.delete(t); f() }, ms)
    timers.add(t)
  }
  for (const [i, p] of peers.entries()) {
    at(p.startMs ?? 0, () => { sessions[i].setInterested(true); seeders[i].unchoke() })
    if (p.stall != null) {
      if (links.stall == null) throw new Error('these links cannot be made to stall')
      const [stall, unstall] = links.stall(streams[2 * i], streams[2 * i + 1])
      at(p.stall[0], stall)
      at(p.stall[1], unstall)
    }
  }
  await new Promise(resolve => setTimeout(resolve, ms))
  for (const s of [...seeders, ...sessions]) s.close()
  return {
    window: (from, to) => {
      const sum = (xs: Array<[number, number]>): number => xs.filter(([t]) => t >= start + from && t < start + to).reduce((n, [, b]) => n + b, 0)
      const bytes = leechers.map(l => sum(l.arrivals))
      return { bytes, written: uploads.map(sum), rate: (bytes.reduce((a, b) => a + b, 0) * 1000) / (to - from) }
    }
  }
}

function report (label: string, w: Window): void {
  const total = w.bytes.reduce((a, b) => a + b, 0)
  console.log(`${label}: ${(w.rate / MiB).toFixed(2)} MiB/s in all; received ${w.bytes.map(b => `${(100 * b / total).toFixed(1)}%`).join(' / ')}; written ${w.written.map(b => (b / MiB).toFixed(2)).join(' / ')} MiB`)
}

/** the rate is the cap, and every peer got 1/n of it, within ±15% */
function expectEvenSplit (w: Window, cap: number, n = w.bytes.length): void {
  expect(w.rate).toBeGreaterThan(0.9 * cap)
  expect(w.rate).toBeLessThan(1.1 * cap)
  const total = w.bytes.reduce((a, b) => a + b, 0)
  for (const b of w.bytes) {
    expect(b / total).toBeGreaterThan(0.85 / n)
    expect(b / total).toBeLessThan(1.15 / n)
  }
}

const CAP = 1 * MiB

describe('a capped uplink is shared evenly among the unchoked sessions (issue 9)', () => {
  it('whatever their request depth: 2 and 64 blocks outstanding, requests 20 ms in flight', async () => {
    const r = await run(CAP, [{ depth: 2, rttMs: 20 }, { depth: 64, rttMs: 20 }], 3000)
    const w = r.window(500, 3000) // after the bucket's initial burst
    report('depth 2 vs 64', w)
    expectEvenSplit(w, CAP)
  })

  it('by bytes, not by requests: 16 KiB blocks get as much as 64 KiB blocks', async () => {
    const r = await run(CAP, [{ depth: 8, blockSize: 16 * KiB }, { depth: 8 }], 3000)
    const w = r.window(500, 3000)
    report('16 vs 64 KiB blocks', w)
    expectEvenSplit(w, CAP)
  })

  it('work-conserving: a peer not asking leaves its share to the others, then gets its third', async () => {
    const r = await run(CAP, [{ depth: 4 }, { depth: 16 }, { depth: 64, startMs: 1500 }], 4000)
    const two = r.window(300, 1500)
    report('4/16, 64 not yet asking', two)
    expect(two.bytes[2]).toBe(0)
    expectEvenSplit({ ...two, bytes: two.bytes.slice(0, 2) }, CAP)
    const three = r.window(2000, 4000)
    report('4/16/64', three)
    expectEvenSplit(three, CAP)
  })

  it('a stalled link takes no tokens: the others get the whole cap meanwhile', async () => {
    const r = await run(CAP, [{ depth: 64, stall: [1000, 3000] }, { depth: 64 }], 3000)
    const w = r.window(1200, 3000)
    report('one link stalled', w)
    expect(w.bytes[0]).toBe(0)
    // what it may write is what its stream buffers before it says "drain first", not half the cap
    expect(w.written[0]).toBeLessThan(0.1 * CAP)
    expect(w.bytes[1]).toBeGreaterThan(0.85 * CAP * 1.8)
  })
})

describe('the same over real libp2p nodes (TCP + Noise + Yamux)', () => {
  let links: Awaited<ReturnType<typeof libp2pLinks>> | undefined
  afterEach(async () => {
    await links?.stop()
    links = undefined
  })

  it('depth 2 and depth 64 get the same share', async () => {
    links = await libp2pLinks()
    const r = await run(CAP, [{ depth: 2 }, { depth: 64 }], 3000, links)
    const w = r.window(500, 3000)
    report('libp2p: depth 2 vs 64', w)
    expectEvenSplit(w, CAP)
  })
})
