/**
 * Relays (net/relay.ts): which relayed connections carry a swarm's data, how a connection is
 * told relayed from direct, a relay's limits; and reachability (net/reachability.ts).
 */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { carriesData, connectionKind, DATA_RELAY_MIN_BYTES, DATA_RELAY_MIN_SECONDS, DEFAULT_RELAY_LIMITS, relayLimits, relayServerInit } from '../../src/net/relay.js'
import { reachabilityOf, UNREACHABLE_WARN_MS, UnreachableWatch } from '../../src/net/reachability.js'
import { isPublicAddress } from '../../src/net/address-class.js'

const RELAY = '/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE'

describe('relayed connections', () => {
  it('a direct connection carries data; a relayed one only within generous limits', () => {
    expect(carriesData({ limits: undefined })).toBe(true)
    // circuit relay v2's defaults: 128 KiB, 2 minutes: signalling only
    expect(carriesData({ limits: { bytes: 128n * 1024n, seconds: 120 } })).toBe(false)
    expect(carriesData({ limits: { bytes: BigInt(DATA_RELAY_MIN_BYTES), seconds: DATA_RELAY_MIN_SECONDS } })).toBe(true)
    expect(carriesData({ limits: { bytes: BigInt(DATA_RELAY_MIN_BYTES) - 1n, seconds: 3600 } })).toBe(false)
    expect(carriesData({ limits: { bytes: 1n << 40n, seconds: DATA_RELAY_MIN_SECONDS - 1 } })).toBe(false)
    // a relay with our defaults carries data
    expect(carriesData({ limits: { bytes: BigInt(DEFAULT_RELAY_LIMITS.maxBytesPerConnection), seconds: DEFAULT_RELAY_LIMITS.maxSecondsPerConnection } })).toBe(true)
  })

  it('tells a relayed connection by its circuit address', () => {
    expect(connectionKind({ remoteAddr: multiaddr('/ip4/10.0.0.2/tcp/5000/p2p/12D3KooWRnQ2RmBTFyXNNbcs6q2Rq1u8iBk7UDPqGZhPBbpAG4WE') })).toBe('direct')
    expect(connectionKind({ remoteAddr: multiaddr(`${RELAY}/p2p-circuit/p2p/12D3KooWEzvVLz6fWBg6Mu3wbR5V6KuWcVZnqBuv8Nd1Dua5WACN`) })).toBe('relayed')
  })

  it("a relay's limits: defaults, overrides, and a bad one refused", () => {
    expect(relayLimits()).toEqual(DEFAULT_RELAY_LIMITS)
    expect(relayLimits({ maxReservations: 3, maxBytesPerConnection: undefined }).maxReservations).toBe(3)
    expect(() => relayLimits({ maxConnections: 0 })).toThrow(/maxConnections/)
    const init = relayServerInit({ maxBytesPerConnection: 1 << 20, maxSecondsPerConnection: 60 })
    expect(init?.reservations).toMatchObject({ applyDefaultLimit: true, defaultDataLimit: 1n << 20n, defaultDurationLimit: 60_000 })
  })
})

describe('reachability', () => {
  const isPublic = (ma: ReturnType<typeof multiaddr>): boolean => ma.toString().startsWith('/ip4/203.')
  it('public with an address the classifier calls public, relayed with a reservation only, private otherwise', () => {
    expect(reachabilityOf([multiaddr('/ip4/192.168.1.5/tcp/1'), multiaddr('/ip4/203.0.113.7/tcp/1')], isPublic)).toBe('public')
    expect(reachabilityOf([multiaddr('/ip4/192.168.1.5/tcp/1'), multiaddr(`${RELAY}/p2p-circuit`)], isPublic)).toBe('relayed')
    expect(reachabilityOf([multiaddr('/ip4/192.168.1.5/tcp/1')], isPublic)).toBe('private')
    expect(reachabilityOf([], isPublic)).toBe('private')
  })

  it('by default, private, loopback and link-local addresses are not public', () => {
    for (const a of ['/ip4/10.1.2.3/tcp/1', '/ip4/192.168.0.1/tcp/1', '/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/1', '/ip6/fe80::1/tcp/1']) expect(isPublicAddress(multiaddr(a))).toBe(false)
    expect(isPublicAddress(multiaddr('/ip4/8.8.8.8/tcp/1'))).toBe(true)
    expect(isPublicAddress(multiaddr(`${RELAY}/p2p-circuit`))).toBe(false)
  })

  it('says once that no known peer can be reached, after a while, and again only after one was', () => {
    const w = new UnreachableWatch()
    expect(w.check(0, 0)).toBeUndefined()
    w.dialFailed('a')
    w.dialFailed('b', true)
    expect(w.check(1000, 0)).toBeUndefined()
    expect(w.check(1000 + UNREACHABLE_WARN_MS, 0)).toMatch(/^no peer reachable: 2 known peers could not be reached \(1 only through a relay that carries no data\)/)
    expect(w.check(2000 + UNREACHABLE_WARN_MS, 0)).toBeUndefined()
    // a session came and went: said again after another while
    expect(w.check(3000 + UNREACHABLE_WARN_MS, 1)).toBeUndefined()
    w.reached('a')
    expect(w.check(4000 + UNREACHABLE_WARN_MS, 0)).toBeUndefined()
    expect(w.check(4000 + 2 * UNREACHABLE_WARN_MS, 0)).toMatch(/^no peer reachable: 1 known peer could not/)
  })
})
