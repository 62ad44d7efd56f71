import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { COPY_BELOW, Outbox } from '../../src/session/outbox.js'

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)

/** the buffers a take() hands to the stream */
function buffers (data: Uint8Array | Uint8ArrayList): Uint8Array[] {
  return data instanceof Uint8Array ? [data] : [...data]
}

describe('Outbox', () => {
  it('copies small frames into one buffer, in order', () => {
    const box = new Outbox()
    box.add(bytes(6, 1))
    box.add(new Uint8ArrayList(bytes(11, 2), bytes(100, 3)))
    box.add(bytes(13, 4))
    expect(box.bytes).toBe(130)
    const out = box.take()
    expect(out).toBeInstanceOf(Uint8Array)
    expect([...buffers(out)[0]]).toEqual([...bytes(6, 1), ...bytes(11, 2), ...bytes(100, 3), ...bytes(13, 4)])
    expect(box.bytes).toBe(0)
  })

  it('keeps a large block a buffer of its own (not copied), with the small frames around it merged', () => {
    const box = new Outbox()
    const big = bytes(COPY_BELOW, 9)
    box.add(bytes(6, 1))
    box.add(new Uint8ArrayList(bytes(11, 2), big)) // a piece: its header, then its block
    box.add(bytes(6, 3))
    box.add(bytes(6, 4))
    const parts = buffers(box.take())
    expect(parts).toHaveLength(3)
    expect([...parts[0]]).toEqual([...bytes(6, 1), ...bytes(11, 2)])
    expect(parts[1]).toBe(big)
    expect([...parts[2]]).toEqual([...bytes(6, 3), ...bytes(6, 4)])
  })

  it('hands a lone buffer over as it is, and is empty after take()', () => {
    const box = new Outbox()
    const one = bytes(20, 7)
    box.add(one)
    expect(box.take()).toBe(one)
    expect(box.bytes).toBe(0)
    box.add(bytes(3, 1))
    expect([...buffers(box.take())[0]]).toEqual([1, 1, 1])
  })

  it('skips empty buffers', () => {
    const box = new Outbox()
    box.add(new Uint8Array(0))
    box.add(bytes(2, 5))
    box.add(new Uint8Array(0))
    expect(box.bytes).toBe(2)
    expect(buffers(box.take())).toHaveLength(1)
  })
})
