import { describe, expect, it } from 'vitest'
import { Bitfield, InvalidBitfieldError } from '../src/bitfield.js'

describe('Bitfield', () => {
  it('byte(): eight pieces in the wire layout (piece 8·i in the high bit), 0 past the end', () => {
    const bf = new Bitfield(10)
    bf.set(0)
    bf.set(7)
    bf.set(9)
    expect(bf.byte(0)).toBe(0b10000001)
    expect(bf.byte(1)).toBe(0b01000000)
    expect(bf.byte(2)).toBe(0)
    expect(Bitfield.full(10).byte(1)).toBe(0b11000000)
  })

  it('starts clear and counts set bits', () => {
    const bf = new Bitfield(10)
    expect(bf.size).toBe(10)
    expect(bf.count()).toBe(0)
    bf.set(3)
    bf.set(3) // idempotent: the running count must not drift
    bf.set(9)
    expect(bf.count()).toBe(2)
    expect(bf.get(3)).toBe(true)
    expect(bf.get(4)).toBe(false)
    bf.set(3, false)
    bf.set(3, false)
    expect(bf.count()).toBe(1)
    expect(bf.isComplete()).toBe(false)
  })

  it('is MSB-first: piece 0 is the high bit of byte 0 (BEP 3)', () => {
    const bf = new Bitfield(16)
    bf.set(0)
    bf.set(9)
    expect([...bf.toBytes()]).toEqual([0b1000_0000, 0b0100_0000])
    const back = Bitfield.fromBytes(12, new Uint8Array([0b0000_0001, 0b0001_0000]))
    expect(back.get(7)).toBe(true)
    expect(back.get(11)).toBe(true)
    expect(back.count()).toBe(2)
  })

  it('round-trips through bytes', () => {
    const bf = new Bitfield(21)
    for (const i of [0, 1, 5, 8, 13, 20]) bf.set(i)
    const back = Bitfield.fromBytes(21, bf.toBytes())
    for (let i = 0; i < 21; i++) expect(back.get(i)).toBe(bf.get(i))
    expect(back.count()).toBe(6)
    expect(bf.toBytes().length).toBe(3)
  })

  it('rejects a wrong length', () => {
    expect(() => Bitfield.fromBytes(9, new Uint8Array(1))).toThrow(InvalidBitfieldError)
    expect(() => Bitfield.fromBytes(9, new Uint8Array(3))).toThrow(InvalidBitfieldError)
    expect(() => Bitfield.fromBytes(8, new Uint8Array(0))).toThrow(InvalidBitfieldError)
    expect(Bitfield.fromBytes(0, new Uint8Array(0)).size).toBe(0)
  })

  it('rejects spare bits set past the last piece', () => {
    // 10 pieces: the low 6 bits of byte 1 are spare
    expect(() => Bitfield.fromBytes(10, new Uint8Array([0xff, 0b0000_0001]))).toThrow(InvalidBitfieldError)
    expect(() => Bitfield.fromBytes(10, new Uint8Array([0, 0b0010_0000]))).toThrow(/spare/)
    expect(Bitfield.fromBytes(10, new Uint8Array([0xff, 0b1100_0000])).isComplete()).toBe(true)
  })

  it('full() sets exactly size bits and no spare bits', () => {
    const bf = Bitfield.full(11)
    expect(bf.count()).toBe(11)
    expect(bf.isComplete()).toBe(true)
    expect([...bf.toBytes()]).toEqual([0xff, 0b1110_0000])
    expect(Bitfield.full(16).toBytes()).toEqual(new Uint8Array([0xff, 0xff]))
    expect(Bitfield.full(0).isComplete()).toBe(true)
  })

  it('get() is false out of range, set() throws RangeError', () => {
    const bf = Bitfield.full(4)
    expect(bf.get(-1)).toBe(false)
    expect(bf.get(4)).toBe(false)
    expect(bf.get(1.5)).toBe(false)
    expect(() => bf.set(4)).toThrow(RangeError)
    expect(() => bf.set(-1)).toThrow(RangeError)
  })

  it('clone() and toBytes() are independent copies', () => {
    const bf = new Bitfield(8)
    const copy = bf.clone()
    const bytes = bf.toBytes()
    bf.set(2)
    expect(copy.get(2)).toBe(false)
    expect(copy.count()).toBe(0)
    expect(bytes[0]).toBe(0)
    copy.set(5)
    expect(bf.get(5)).toBe(false)
  })
})
