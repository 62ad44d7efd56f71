import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import type { MultiaddrConnection, PeerId } from '@libp2p/interface'
import { ipOf, isLoopback, PendingInbound, PendingInboundConfigError } from '../../src/net/pending-inbound.js'

/** Just what the gater hooks touch of a MultiaddrConnection: its address and its close event. */
function fakeConn (addr: string): MultiaddrConnection & { fireClose: () => void } {
  const target = new EventTarget()
  return Object.assign(target, {
    remoteAddr: multiaddr(addr),
    fireClose: () => { target.dispatchEvent(new Event('close')) }
  }) as unknown as MultiaddrConnection & { fireClose: () => void }
}

const peer = {} as unknown as PeerId

describe('PendingInbound: connections in their handshake, per IP address', () => {
  it('refuses the (maxPerIp + 1)th from one address, not from another; a finished one frees a place', () => {
    const p = new PendingInbound({ maxPerIp: 2 })
    expect(p.open('10.0.0.1')).toBe(true)
    expect(p.open('10.0.0.1')).toBe(true)
    expect(p.open('10.0.0.1')).toBe(false)
    expect(p.open('10.0.0.2')).toBe(true)
    p.close('10.0.0.1')
    expect(p.open('10.0.0.1')).toBe(true)
    expect(p.count('10.0.0.1')).toBe(2)
  })

  it('forgets an address with nothing pending (memory stays bounded by what is pending)', () => {
    const p = new PendingInbound({ maxPerIp: 2 })
    for (let i = 0; i < 1000; i++) { p.open(`10.0.${i >> 8}.${i & 255}`); p.close(`10.0.${i >> 8}.${i & 255}`) }
    expect(p.addresses).toBe(0)
    p.close('10.9.9.9') // never opened: no effect, no negative count
    expect(p.count('10.9.9.9')).toBe(0)
  })

  it('does not limit loopback unless asked to', () => {
    const open = new PendingInbound({ maxPerIp: 1 })
    expect(open.open('127.0.0.1')).toBe(true)
    expect(open.open('127.0.0.1')).toBe(true)
    const limited = new PendingInbound({ maxPerIp: 1, limitLoopback: true })
    expect(limited.open('127.0.0.1')).toBe(true)
    expect(limited.open('127.0.0.1')).toBe(false)
  })

  it('logs refusals at most once per interval, counting the rest', () => {
    let now = 0
    const logs: string[] = []
    const p = new PendingInbound({ maxPerIp: 1, log: (m) => logs.push(m), now: () => now })
    p.open('10.0.0.1')
    for (let i = 0; i < 50; i++) p.open('10.0.0.1')
    expect(logs).toHaveLength(1)
    expect(logs[0]).toMatch(/refused an inbound connection from 10\.0\.0\.1/)
    now += 10_000
    p.open('10.0.0.1')
    expect(logs).toHaveLength(2)
    expect(logs[1]).toMatch(/and 49 more/)
  })

  it('as a libp2p gater: counted when accepted, released when upgraded or when the socket closes, once', () => {
    const p = new PendingInbound({ maxPerIp: 2 })
    const gater = p.gater()
    const a = fakeConn('/ip4/10.0.0.1/tcp/4001')
    const b = fakeConn('/ip4/10.0.0.1/tcp/4002')
    const c = fakeConn('/ip4/10.0.0.1/tcp/4003')
    const other = fakeConn('/ip6/2001:db8::1/tcp/4001')
    expect(gater.denyInboundConnection?.(a)).toBe(false)
    expect(gater.denyInboundConnection?.(b)).toBe(false)
    expect(gater.denyInboundConnection?.(c)).toBe(true) // a third silent socket from one host
    expect(gater.denyInboundConnection?.(other)).toBe(false) // another host is not affected
    // a upgrades: its place is free; its socket closing later changes nothing
    expect(gater.denyInboundUpgradedConnection?.(peer, a)).toBe(false)
    a.fireClose()
    expect(p.count('10.0.0.1')).toBe(1)
    // b never speaks and is dropped by the upgrade timeout: its place is free too
    b.fireClose()
    b.fireClose()
    expect(p.count('10.0.0.1')).toBe(0)
    expect(gater.denyInboundConnection?.(c)).toBe(false)
  })

  it('refuses a nonsense bound with a named error', () => {
    expect(() => new PendingInbound({ maxPerIp: 0 })).toThrow(PendingInboundConfigError)
  })

  it('reads the IP of a multiaddr', () => {
    expect(ipOf(multiaddr('/ip4/192.168.1.2/tcp/1'))).toBe('192.168.1.2')
    expect(ipOf(multiaddr('/ip6/::1/tcp/1'))).toBe('::1')
    expect(ipOf(multiaddr('/dns4/example.com/tcp/1'))).toBeUndefined()
    expect(isLoopback('127.0.0.5')).toBe(true)
    expect(isLoopback('::1')).toBe(true)
    expect(isLoopback('10.0.0.1')).toBe(false)
  })
})
