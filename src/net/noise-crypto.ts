/**
 * Noise's crypto, with HKDF from Node (OpenSSL) instead of JavaScript.
 *
 * @chainsafe/libp2p-noise's default on Node takes SHA-256, ChaCha20-Poly1305 and X25519 from
 * `node:crypto`, but HKDF from @noble/hashes, SHA-256 in JavaScript. An XX handshake runs HKDF
 * four times on each side (three MixKeys and the Split), in a new process on code V8 has not
 * compiled yet: about 10 ms of CPU on each side of a peer's first connection, in the window
 * before its first byte. The function is the same (RFC 5869 with the chaining key as salt, no
 * info, 96 bytes out, as the Noise spec's HKDF(ck, ikm, 3)), so are the keys: a unit test holds
 * them equal to noise's own.
 */
import { hkdfSync } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'

const NO_INFO = new Uint8Array(0)

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  getHKDF (ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
    const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, NO_INFO, 96))
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
  }
}
