import { expect } from 'vitest'
import {
  MAX_BLOCK_LENGTH, MessageType, PEERS_MAX_ADDR_LENGTH, PEERS_MAX_ADDRS, PEERS_MAX_COUNT, PEERS_MAX_ID_LENGTH,
  type WireMessage
} from '../../src/wire/codec.js'

const U32_MAX = 0xffffffff

/** Checks a decoded message is one the encoders could have produced. */
export function expectWellFormed (msg: WireMessage): void {
  const u32 = (n: number): void => { expect(Number.isInteger(n) && n >= 0 && n <= U32_MAX).toBe(true) }
  expect(Object.values(MessageType)).toContain(msg.type)
  switch (msg.type) {
    case MessageType.Handshake:
      expect(msg.version >= 0 && msg.version <= 255).toBe(true)
      expect(msg.manifest.byteLength).toBeGreaterThan(0)
      break
    case MessageType.Have: u32(msg.piece); break
    case MessageType.Request:
    case MessageType.Cancel:
    case MessageType.Reject:
      u32(msg.piece); u32(msg.offset); u32(msg.length)
      break
    case MessageType.Piece:
      u32(msg.piece); u32(msg.offset)
      expect(msg.data.byteLength >= 1 && msg.data.byteLength <= MAX_BLOCK_LENGTH).toBe(true)
      break
    case MessageType.Peers:
      expect(msg.peers.length).toBeLessThanOrEqual(PEERS_MAX_COUNT)
      for (const { id, addrs } of msg.peers) {
        expect(id.byteLength >= 1 && id.byteLength <= PEERS_MAX_ID_LENGTH).toBe(true)
        expect(addrs.length).toBeLessThanOrEqual(PEERS_MAX_ADDRS)
        for (const a of addrs) expect(a.byteLength >= 1 && a.byteLength <= PEERS_MAX_ADDR_LENGTH).toBe(true)
      }
      break
    default:
      break
  }
}
