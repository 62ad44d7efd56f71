/**
 * PeerExchange with a fake clock and no network: when each session is sent a sample of the
 * view, what a `peers` message writes to the peer book and hands on to be dialled, and what
 * identify teaches the view.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { PeerBook } from '../../src/discovery/peer-book.js'
import { fromWirePeers, PEX_MAX_PEERS, PexView, toWirePeers } from '../../src/discovery/pex.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import { shortId } from '../../src/session/session.js'
import { PeerExchange, type ExchangeSession, type PeerExchangeInit } from '../../src/swarm/exchange-peers.js'
import type { WirePeer } from '../../src/wire/codec.js'
import { prng } from '../helpers/prng.js'

/** Real peer ids (the wire carries their multihashes), generated once: key generation is the slow part. */
let ids: string[] = []
let self: string
beforeAll(async () => {
  const gen = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  ids = await Promise.all(Array.from({ length: 64 }, gen))
  self = await gen()
})

const addr = (i: number): string => `/ip4/10.0.${Math.floor(i / 250)}.${i % 250}/tcp/${4000 + i}`
const peer = (i: number): PeerAddress => ({ peerId: ids[i], multiaddrs: [addr(i)] })

interface Harness {
  pex: PeerExchange
  view: PexView
  book: PeerBook
  /** each `peers` message sent, decoded: to whom, and whom it named */
  sent: Array<{ to: string, peers: PeerAddress[] }>
  /** each list handed to the swarm to dial */
  discovered: PeerAddress[][]
  logs: string[]
  advance: (ms: number) => void
}

function setup (init: Partial<Pick<PeerExchangeInit, 'interval'>> = {}): Harness {
  let t = 1_000_000
  const now = (): number => t
  const view = new PexView({ now, random: prng(7) })
  const book = new PeerBook({ self, now })
  const sent: Harness['sent'] = []
  const discovered: PeerAddress[][] = []
  const logs: string[] = []
  const pex = new PeerExchange({
    book,
    view,
    now,
    log: (m) => logs.push(m),
    ...init,
    delegate: {
      send: (to, peers) => { sent.push({ to, peers: fromWirePeers(peers).peers }) },
      discovered: (peers) => { discovered.push(peers) }
    }
  })
  return { pex, view, book, sent, discovered, logs, advance: (ms) => { t += ms } }
}

/** A session as the swarm's: its have-state arrived unless said otherwise. */
const session = (i: number, over: Partial<ExchangeSession> = {}): ExchangeSession => ({ remotePeer: ids[i], haveStateReceived: true, closed: false, ...over })
const named = (h: Harness, to: number): string[][] => h.sent.filter(m => m.to === ids[to]).map(m => m.peers.map(p => p.peerId).sort())

describe('PeerExchange: sending', () => {
  it('a session gets a sample only when due: first after 1 s, then every interval', () => {
    const h = setup({ interval: 10_000 })
    for (const i of [0, 1, 2]) h.pex.learned(ids[i], [addr(i)])
    const sessions = [session(0)]
    h.pex.sessionOpened(ids[0])
    h.pex.tick(sessions)
    h.advance(999)
    h.pex.tick(sessions)
    expect(h.sent).toEqual([])
    h.advance(1)
    h.pex.tick(sessions)
    expect(named(h, 0)).toEqual([[ids[1], ids[2]].sort()])
    h.advance(9_999)
    h.pex.tick(sessions)
    expect(h.sent).toHaveLength(1)
    h.advance(1)
    h.pex.tick(sessions)
    expect(h.sent).toHaveLength(2)
    // a late tick does not make up for lost time: the next is an interval after this one
    h.advance(25_000)
    h.pex.tick(sessions)
    h.pex.tick(sessions)
    expect(h.sent).toHaveLength(3)
    h.advance(9_999)
    h.pex.tick(sessions)
    expect(h.sent).toHaveLength(3)
  })

  it('an interval under 1 s: the first message goes after one interval', () => {
    const h = setup({ interval: 400 })
    h.pex.learned(ids[1], [addr(1)])
    h.pex.sessionOpened(ids[0])
    h.advance(399)
    h.pex.tick([session(0)])
    expect(h.sent).toEqual([])
    h.advance(1)
    h.pex.tick([session(0)])
    expect(named(h, 0)).toEqual([[ids[1]]])
  })

  it('waits for the have-state; skips closed sessions and those never opened or since closed', () => {
    const h = setup({ interval: 10_000 })
    h.pex.learned(ids[9], [addr(9)])
    for (const i of [0, 1, 2, 3]) h.pex.sessionOpened(ids[i])
    h.advance(1000)
    const waiting = { remotePeer: ids[0], haveStateReceived: false, closed: false }
    h.pex.sessionClosed(ids[3])
    h.pex.tick([waiting, session(1, { closed: true }), session(2), session(3), session(4)])
    expect(h.sent.map(m => m.to)).toEqual([ids[2]])
    // still due once its have-state arrives
    h.advance(5)
    waiting.haveStateReceived = true
    h.pex.tick([waiting])
    expect(h.sent.map(m => m.to)).toEqual([ids[2], ids[0]])
  })

  it('the sample never names the recipient or us, and holds at most PEX_MAX_PEERS', () => {
    const h = setup({ interval: 1000 })
    for (let i = 0; i < ids.length; i++) h.pex.learned(ids[i], [addr(i)])
    h.pex.learned(self, ['/ip4/10.9.9.9/tcp/1'])
    const sessions = ids.slice(0, 8).map((_, i) => session(i))
    for (const s of sessions) h.pex.sessionOpened(s.remotePeer)
    for (let round = 0; round < 5; round++) {
      h.advance(1000)
      h.pex.tick(sessions)
    }
    expect(h.sent).toHaveLength(5 * sessions.length)
    for (const m of h.sent) {
      const names = m.peers.map(p => p.peerId)
      expect(names).not.toContain(m.to)
      expect(names).not.toContain(self)
      expect(names.length).toBe(PEX_MAX_PEERS)
      expect(new Set(names).size).toBe(names.length)
    }
  })

  it('a forgotten peer is not passed on', () => {
    const h = setup({ interval: 1000 })
    h.pex.learned(ids[1], [addr(1)])
    h.pex.learned(ids[2], [addr(2)])
    h.pex.forget(ids[1])
    h.pex.sessionOpened(ids[0])
    h.advance(1000)
    h.pex.tick([session(0)])
    expect(named(h, 0)).toEqual([[ids[2]]])
  })
})

describe('PeerExchange: receiving', () => {
  it('drops our own id and malformed entries (logged), and passes each new peer on once', () => {
    const h = setup()
    const raw: WirePeer[] = [
      ...toWirePeers([peer(1), { peerId: self, multiaddrs: [addr(50)] }, peer(2)]),
      { id: Uint8Array.from([1, 2, 3]), addrs: toWirePeers([peer(3)])[0].addrs }, // not a peer id
      { id: toWirePeers([peer(4)])[0].id, addrs: [Uint8Array.from([0xff, 0xff])] }, // no usable address
      ...toWirePeers([{ peerId: ids[1], multiaddrs: [addr(60)] }]) // the same peer again
    ]
    h.pex.received(ids[0], raw)
    expect(h.discovered).toEqual([[peer(1), peer(2)]])
    expect(h.logs).toEqual([`peer exchange from ${shortId(ids[0])}: dropped 2 malformed entries`])
    // the book keeps them as heard of by peer exchange, at the first addresses given
    expect(h.book.all().map(p => [p.peerId, p.source, p.multiaddrs])).toEqual([[ids[1], 'pex', [addr(1)]], [ids[2], 'pex', [addr(2)]]])
  })

  it('a peer the book knew already is still handed on (to dial again), and keeps its first source', () => {
    const h = setup()
    h.book.add([peer(1)], 'tracker')
    h.pex.received(ids[0], toWirePeers([{ peerId: ids[1], multiaddrs: [addr(61)] }]))
    expect(h.discovered).toEqual([[{ peerId: ids[1], multiaddrs: [addr(61)] }]])
    expect(h.book.get(ids[1])).toMatchObject({ source: 'tracker', multiaddrs: [addr(1)] })
  })

  it('nothing new: nothing handed on', () => {
    const h = setup()
    h.pex.received(ids[0], toWirePeers([{ peerId: self, multiaddrs: [addr(1)] }]))
    h.pex.received(ids[1], [])
    expect(h.discovered).toEqual([])
    expect(h.logs).toEqual([])
  })

  it('at most PEX_MAX_PEERS entries of one message are read', () => {
    const h = setup()
    const raw = toWirePeers(ids.slice(1, 51).map((_, i) => peer(i + 1)))
    raw.push(...toWirePeers(ids.slice(51).map((_, i) => peer(i + 51))))
    expect(raw.length).toBeGreaterThan(PEX_MAX_PEERS)
    h.pex.received(ids[0], raw)
    expect(h.discovered).toHaveLength(1)
    expect(h.discovered[0].map(p => p.peerId)).toEqual(ids.slice(1, 1 + PEX_MAX_PEERS))
  })

  it('a peer is listened to at most once per min(5 s, interval / 2); a new session starts afresh', () => {
    const h = setup({ interval: 30_000 })
    const msg = (i: number): WirePeer[] => toWirePeers([peer(i)])
    h.pex.received(ids[0], msg(10))
    h.advance(4_999)
    h.pex.received(ids[0], msg(11)) // too soon: ignored
    h.pex.received(ids[1], msg(12)) // another sender has its own allowance
    h.advance(1)
    h.pex.received(ids[0], msg(13))
    expect(h.discovered.map(l => l[0].peerId)).toEqual([ids[10], ids[12], ids[13]])
    h.pex.received(ids[0], msg(14)) // too soon again …
    h.pex.sessionClosed(ids[0])
    h.pex.received(ids[0], msg(15)) // … but its session closed and it came back
    expect(h.discovered.map(l => l[0].peerId)).toEqual([ids[10], ids[12], ids[13], ids[15]])

    const fast = setup({ interval: 2_000 })
    fast.pex.received(ids[0], msg(10))
    fast.advance(999)
    fast.pex.received(ids[0], msg(11))
    fast.advance(1)
    fast.pex.received(ids[0], msg(12))
    expect(fast.discovered.map(l => l[0].peerId)).toEqual([ids[10], ids[12]])
  })
})

describe('PeerExchange: learning from identify', () => {
  it('ignores relayed addresses and strips /p2p/<id>', () => {
    const h = setup()
    h.pex.learned(ids[1], [
      `/ip4/10.1.1.1/tcp/4001/p2p/${ids[1]}`,
      `/ip4/10.2.2.2/tcp/4001/p2p/${ids[2]}/p2p-circuit/p2p/${ids[1]}`,
      `/ip4/10.2.2.2/tcp/4001/p2p/${ids[2]}/p2p-circuit`,
      '/ip6/::1/tcp/4002'
    ])
    expect(h.view.sample(10)).toEqual([{ peerId: ids[1], multiaddrs: ['/ip4/10.1.1.1/tcp/4001', '/ip6/::1/tcp/4002'] }])
  })

  it('a peer reachable only through a relay is not learned; a later identify refreshes the addresses', () => {
    const h = setup()
    h.pex.learned(ids[1], [`/ip4/10.2.2.2/tcp/4001/p2p/${ids[2]}/p2p-circuit/p2p/${ids[1]}`])
    h.pex.learned(ids[3], [])
    expect(h.view.size).toBe(0)
    h.pex.learned(ids[1], [addr(1)])
    h.pex.learned(ids[1], [addr(2)])
    expect(h.view.sample(10)).toEqual([{ peerId: ids[1], multiaddrs: [addr(2)] }])
  })
})
