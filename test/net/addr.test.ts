import { describe, expect, it } from 'vitest'
import { splitPeerAddr, withoutPeerId, withPeerId } from '../../src/net/addr.js'

const A = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
const R = '12D3KooWCqNotkKfMtW1D2oZsJZEd4Nqs3N1YRsmQ5KbHmzKvF1R'

describe('peer addresses: one home for /p2p/<id>', () => {
  it('splits the trailing /p2p/<id> off, and keeps a relay\'s /p2p inside a circuit address', () => {
    const plain = splitPeerAddr(`/ip4/127.0.0.1/tcp/4001/p2p/${A}`)
    expect(plain.bare.toString()).toBe('/ip4/127.0.0.1/tcp/4001')
    expect(plain.peerId).toBe(A)
    const circuit = splitPeerAddr(`/ip4/10.0.0.1/tcp/4001/p2p/${R}/p2p-circuit/p2p/${A}`)
    expect(circuit.bare.toString()).toBe(`/ip4/10.0.0.1/tcp/4001/p2p/${R}/p2p-circuit`)
    expect(circuit.peerId).toBe(A)
    expect(splitPeerAddr('/ip4/127.0.0.1/tcp/4001').peerId).toBeUndefined()
  })

  it('withoutPeerId and withPeerId are text in, text out; what does not parse comes back as it was', () => {
    expect(withoutPeerId(`/ip4/127.0.0.1/tcp/1/p2p/${A}`)).toBe('/ip4/127.0.0.1/tcp/1')
    expect(withoutPeerId('/ip4/127.0.0.1/tcp/1')).toBe('/ip4/127.0.0.1/tcp/1')
    expect(withoutPeerId('not an address')).toBe('not an address')
    expect(withPeerId('/ip4/127.0.0.1/tcp/1', A)).toBe(`/ip4/127.0.0.1/tcp/1/p2p/${A}`)
  })
})
