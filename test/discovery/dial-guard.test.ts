import { describe, expect, it } from 'vitest'
import { addressKey, DialGuard } from '../../src/discovery/dial-guard.js'

const A = '/ip4/10.0.0.1/tcp/4001'

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('addressKey', () => {
  it('names what a dial reaches: host and port', () => {
    expect(addressKey('/ip4/10.0.0.1/tcp/4001')).toBe('10.0.0.1:4001')
    expect(addressKey('/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE')).toBe('10.0.0.1:4001')
    expect(addressKey('/ip6/::1/tcp/5')).toBe('[::1]:5')
    expect(addressKey('/dns4/Example.org/tcp/80')).toBe('example.org:80')
  })

  it('refuses addresses nobody can be reached at', () => {
    for (const a of ['/ip4/0.0.0.0/tcp/4001', '/ip4/10.0.0.1/tcp/0', '/ip4/224.0.0.1/tcp/1', '/ip4/255.255.255.255/tcp/1', '/ip6/::/tcp/1', '/ip6/ff02::1/tcp/1', '/ip4/1.2.3.4/udp/1', 'not a multiaddr', '/']) {
      expect(addressKey(a), a).toBeUndefined()
    }
  })
})

describe('DialGuard', () => {
  it('admits at most 2 distinct peer ids per address (a victim named under fresh ids is dialled twice)', () => {
    const g = new DialGuard({ now: clock().now })
    expect(g.admit('a', [A]).admitted).toEqual([A])
    expect(g.admit('b', [A]).admitted).toEqual([A])
    const third = g.admit('c', [A])
    expect(third.admitted).toEqual([])
    expect(third.refused).toEqual([{ addr: A, reason: 'too-many-ids' }])
    // the same address spelt with the id suffix is the same address
    expect(g.admit('d', [`${A}/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE`]).admitted).toEqual([])
    // an id already dialled there may be dialled again
    expect(g.admit('a', [A]).admitted).toEqual([A])
  })

  it('forgets an id after the window: a peer restarted with a new identity is dialled again later', () => {
    const c = clock()
    const g = new DialGuard({ now: c.now, idWindow: 60_000 })
    g.admit('a', [A])
    g.admit('b', [A])
    expect(g.admit('c', [A]).admitted).toEqual([])
    c.advance(60_001)
    expect(g.admit('c', [A]).admitted).toEqual([A])
  })

  it('backs an address off after failed dials, doubling, and forgives it on success', () => {
    const c = clock()
    const g = new DialGuard({ now: c.now, baseBackoff: 1000, maxBackoff: 4000 })
    g.admit('a', [A])
    g.failed([A])
    expect(g.admit('a', [A]).refused).toEqual([{ addr: A, reason: 'backoff' }])
    c.advance(1000)
    expect(g.admit('a', [A]).admitted).toEqual([A])
    g.failed([A])
    c.advance(1999)
    expect(g.admit('a', [A]).admitted).toEqual([])
    c.advance(1)
    expect(g.admit('a', [A]).admitted).toEqual([A])
    g.failed([A])
    g.failed([A])
    g.failed([A])
    c.advance(3999)
    expect(g.admit('a', [A]).admitted).toEqual([])
    c.advance(1) // capped at maxBackoff
    expect(g.admit('a', [A]).admitted).toEqual([A])
    g.failed([A])
    g.succeeded(`${A}/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE`)
    expect(g.admit('a', [A]).admitted).toEqual([A])
  })

  it('judges each address of a peer on its own', () => {
    const g = new DialGuard({ now: clock().now })
    const B = '/ip4/10.0.0.2/tcp/4001'
    g.admit('x', [A])
    g.admit('y', [A])
    expect(g.admit('z', [A, B, '/ip4/0.0.0.0/tcp/1'])).toEqual({ admitted: [B], refused: [{ addr: A, reason: 'too-many-ids' }, { addr: '/ip4/0.0.0.0/tcp/1', reason: 'undialable' }] })
  })

  it('remembers a bounded number of addresses', () => {
    const g = new DialGuard({ now: clock().now, maxAddresses: 100 })
    for (let i = 0; i < 1000; i++) g.admit(`p${i}`, [`/ip4/10.0.${Math.floor(i / 250)}.${i % 250 + 1}/tcp/1`])
    expect(g.size).toBe(100)
  })
})

describe('relay routes', () => {
  const relay = '/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE/p2p-circuit'
  it('many peers behind one relay are many addresses, not one address under many ids', () => {
    const guard = new DialGuard({ maxIdsPerAddress: 2 })
    for (let i = 0; i < 5; i++) expect(guard.admit(`peer-${i}`, [relay]).admitted).toEqual([relay])
    // while the relay's own ip:port still admits two ids at most
    const direct = '/ip4/10.0.0.1/tcp/4001'
    expect(guard.admit('a', [direct]).admitted).toEqual([direct])
    expect(guard.admit('b', [direct]).admitted).toEqual([direct])
    expect(guard.admit('c', [direct]).refused[0]?.reason).toBe('too-many-ids')
  })

  it('a failed dial through a relay backs off that peer only', () => {
    let now = 0
    const guard = new DialGuard({ now: () => now })
    expect(guard.admit('a', [relay]).admitted).toHaveLength(1)
    guard.failed([relay], 'a')
    expect(guard.admit('a', [relay]).refused[0]?.reason).toBe('backoff')
    expect(guard.admit('b', [relay]).admitted).toHaveLength(1)
    now += 60_000
    expect(guard.admit('a', [relay]).admitted).toHaveLength(1)
  })
})
