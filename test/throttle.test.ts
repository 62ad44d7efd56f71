import { describe, expect, it } from 'vitest'
import { parseRate, Throttle } from '../src/throttle.js'

describe('Throttle', () => {
  it('lets a burst through, then paces to the rate', async () => {
    const t = new Throttle({ rate: 1024 * 1024, burst: 64 * 1024 })
    const start = Date.now()
    for (let i = 0; i < 4; i++) await t.take(16 * 1024) // the burst
    expect(Date.now() - start).toBeLessThan(50)
    for (let i = 0; i < 16; i++) await t.take(16 * 1024) // 256 KiB more at 1 MiB/s: ~250 ms
    const elapsed = Date.now() - start
    expect(elapsed).toBeGreaterThanOrEqual(200)
    expect(elapsed).toBeLessThan(1500)
  })

  it('serves waiters in order and honours an abort', async () => {
    const t = new Throttle({ rate: 16 * 1024, burst: 16 * 1024 })
    await t.take(16 * 1024)
    const order: number[] = []
    const ac = new AbortController()
    const a = t.take(8 * 1024).then(() => order.push(1))
    const b = t.take(8 * 1024, ac.signal).then(() => order.push(2), () => order.push(-2))
    ac.abort()
    await Promise.all([a, b])
    expect(order).toEqual([1, -2])
  })

  it('tryTake: takes what is due, never jumps the queue, and a waiter wakes with a quantum due', async () => {
    let now = 0
    // 1 MiB/s: the quantum is the larger of 16 KiB and 5 ms of rate
    const t = new Throttle({ rate: 1024 * 1024, burst: 64 * 1024, now: () => now })
    expect(t.tryTake(64 * 1024)).toBe(true) // the burst
    expect(t.tryTake(1)).toBe(false) // nothing due at t = 0
    now = 8 // 8 ms: 8 KiB due, not 16 KiB
    expect(t.tryTake(16 * 1024)).toBe(false)
    const waiter = t.take(16 * 1024) // queued
    expect(t.tryTake(1)).toBe(false) // someone is waiting: no overtaking
    now = 40 // 40 KiB due by now: the waiter gets its 16 KiB, what follows can go without waiting
    await waiter
    expect(t.tryTake(16 * 1024)).toBe(true)
    expect(t.tryTake(16 * 1024)).toBe(false)
  })

  it('tryTake is always true without a cap', () => {
    expect(new Throttle({ rate: 0 }).tryTake(1 << 30)).toBe(true)
  })

  it('is a no-op without a cap', async () => {
    const t = new Throttle({ rate: 0 })
    expect(t.unlimited).toBe(true)
    await t.take(1 << 30)
  })

  it('parses rates', () => {
    expect(parseRate('20MiB')).toBe(20 * 1024 * 1024)
    expect(parseRate('512k')).toBe(512 * 1024)
    expect(parseRate('1.5 MB/s')).toBe(1.5 * 1024 * 1024)
    expect(parseRate('1000')).toBe(1000)
    expect(() => parseRate('fast')).toThrow(/not a rate/)
  })
})
