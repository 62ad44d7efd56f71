// A fixed-size bit set of pieces, in the wire layout of the BitTorrent `bitfield` message.
// BEP 3: "The high bit in the first byte corresponds to piece index 0. Bits that are cleared
// indicated a missing piece, and set bits indicate a valid and available piece. Spare bits at the
// end are set to zero." A bitfield of the wrong length or with spare bits set is rejected.

export class InvalidBitfieldError extends Error {
  override name = 'InvalidBitfieldError'
}

function byteLength (size: number): number {
  return Math.ceil(size / 8)
}

function popcount8 (b: number): number {
  b = b - ((b >> 1) & 0x55)
  b = (b & 0x33) + ((b >> 2) & 0x33)
  return (b + (b >> 4)) & 0x0f
}

export class Bitfield {
  readonly size: number
  private readonly bytes: Uint8Array
  // running count so count()/isComplete() are O(1): the picker and choker ask often
  private setBits = 0

  constructor (size: number) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`invalid bitfield size ${size}`)
    }
    this.size = size
    this.bytes = new Uint8Array(byteLength(size))
  }

  static fromBytes (size: number, bytes: Uint8Array): Bitfield {
    const bf = new Bitfield(size)
    if (bytes.length !== bf.bytes.length) {
      throw new InvalidBitfieldError(`bitfield is ${bytes.length} bytes, expected ${bf.bytes.length} for ${size} pieces`)
    }
    const spare = bf.bytes.length * 8 - size
    if (spare > 0) {
      // the low `spare` bits of the last byte lie past the last piece
      const mask = (1 << spare) - 1
      if ((bytes[bytes.length - 1] & mask) !== 0) {
        throw new InvalidBitfieldError('bitfield has spare bits set past the last piece')
      }
    }
    bf.bytes.set(bytes)
    let n = 0
    for (let i = 0; i < bytes.length; i++) n += popcount8(bytes[i])
    bf.setBits = n
    return bf
  }

  static full (size: number): Bitfield {
    const bf = new Bitfield(size)
    bf.bytes.fill(0xff)
    const spare = bf.bytes.length * 8 - size
    if (spare > 0) bf.bytes[bf.bytes.length - 1] = (0xff << spare) & 0xff
    bf.setBits = size
    return bf
  }

  get (i: number): boolean {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) return false
    return (this.bytes[i >> 3] & (0x80 >> (i & 7))) !== 0
  }

  set (i: number, value = true): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) {
      throw new RangeError(`bit ${i} out of range [0, ${this.size})`)
    }
    const idx = i >> 3
    const mask = 0x80 >> (i & 7)
    const was = (this.bytes[idx] & mask) !== 0
    if (was === value) return
    if (value) {
      this.bytes[idx] |= mask
      this.setBits++
    } else {
      this.bytes[idx] &= ~mask
      this.setBits--
    }
  }

  /**
   * The byte holding pieces 8·index to 8·index + 7, piece 8·index in its high bit (the wire
   * layout); 0 past the end. Lets a scan skip eight pieces a step.
   */
  byte (index: number): number {
    return this.bytes[index] ?? 0
  }

  count (): number {
    return this.setBits
  }

  isComplete (): boolean {
    return this.setBits === this.size
  }

  toBytes (): Uint8Array {
    // a copy: callers may hand it to a stream that outlives later set() calls
    return this.bytes.slice()
  }

  clone (): Bitfield {
    const bf = new Bitfield(this.size)
    bf.bytes.set(this.bytes)
    bf.setBits = this.setBits
    return bf
  }
}
