// Noise with Node's HKDF (src/net/noise-crypto.ts) derives the keys noise's own JavaScript HKDF does.
import { randomBytes } from 'node:crypto'
import { pureJsCrypto } from '@chainsafe/libp2p-noise'
import { describe, expect, it } from 'vitest'
import { noiseCrypto } from '../../src/net/noise-crypto.js'

describe('noiseCrypto', () => {
  it('getHKDF gives the same three keys as noise\'s own, for chaining keys and inputs of every size a handshake uses', () => {
    for (const ikmLength of [0, 32, 64, 100]) {
      for (let i = 0; i < 20; i++) {
        const ck = randomBytes(32)
        const ikm = randomBytes(ikmLength)
        const ours = noiseCrypto.getHKDF(ck, ikm).map(k => Buffer.from(k).toString('hex'))
        const theirs = pureJsCrypto.getHKDF(ck, ikm).map(k => Buffer.from(k).toString('hex'))
        expect(ours).toEqual(theirs)
        expect(ours.map(k => k.length)).toEqual([64, 64, 64])
      }
    }
  })

  it('keeps the rest of noise\'s default crypto', () => {
    const data = randomBytes(100)
    expect(Buffer.from(noiseCrypto.hashSHA256(data))).toEqual(Buffer.from(pureJsCrypto.hashSHA256(data)))
  })
})
