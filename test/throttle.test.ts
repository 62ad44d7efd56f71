import { afterEach, describe, expect, it, vi } from 'vitest'
import { parseRate, Throttle, type ThrottleShare } from '../src/throttle.js'

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

  it('serves waiters in order; an aborted take leaves the line at once', async () => {
    const t = new Throttle({ rate: 16 * 1024, burst: 16 * 1024 })
    await t.take(16 * 1024)
    const order: number[] = []
    const ac = new AbortController()
    const a = t.take(8 * 1024).then(() => order.push(1))
    const b = t.take(8 * 1024, ac.signal).then(() => order.push(2), () => order.push(-2))
    const c = t.take(8 * 1024).then(() => order.push(3))
    ac.abort()
    await Promise.all([a, b, c])
    // (before issue 9 an aborted waiter was only rejected when its turn came: [1, -2])
    expect(order).toEqual([-2, 1, 3])
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

describe('Throttle: shares (issue 9, a capped uplink shared evenly)', () => {
  const KiB = 1024
  const MiB = 1024 * KiB

  afterEach(() => { vi.useRealTimers() })

  /**
   * A session's upload loop reduced to its use of the throttle: one block at a time, tryTake
   * first, take() when that fails, until `until` (fake ms). Counts the bytes it was let send.
   */
  function pump (share: ThrottleShare, block: number, until: number): { bytes: number, done: Promise<void> } {
    const out = { bytes: 0, done: Promise.resolve() }
    out.done = (async () => {
      while (Date.now() < until) {
        if (!share.tryTake(block)) await share.take(block)
        out.bytes += block
        await Promise.resolve() // the session reads and sends the block
      }
    })()
    return out
  }

  it('waiting shares get equal bytes, whatever their block size', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: MiB, burst: 64 * KiB, now: () => Date.now() })
    const pumps = [pump(t.share(), 16 * KiB, 10_000), pump(t.share(), 64 * KiB, 10_000), pump(t.share(), 64 * KiB, 10_000)]
    await vi.advanceTimersByTimeAsync(10_000)
    await vi.runAllTimersAsync() // the takes still waiting at 10 s
    await Promise.all(pumps.map(p => p.done))
    const total = pumps.reduce((n, p) => n + p.bytes, 0)
    // the cap holds: 10 s of rate and the burst, give or take a block
    expect(total).toBeGreaterThan(10 * MiB - 64 * KiB)
    expect(total).toBeLessThanOrEqual(10 * MiB + 64 * KiB + 128 * KiB)
    for (const p of pumps) expect(Math.abs(p.bytes - total / 3)).toBeLessThan(0.05 * total / 3)
  })

  it('weighted shares get bytes in proportion to their weights (the choker sets them)', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: MiB, burst: 64 * KiB, now: () => Date.now() })
    const [heavy, light, plain] = [t.share(), t.share(), t.share()]
    heavy.setWeight(3)
    light.setWeight(0.5)
    light.setWeight(0) // ignored: a weight is > 0
    const pumps = [pump(heavy, 64 * KiB, 9_000), pump(light, 16 * KiB, 9_000), pump(plain, 64 * KiB, 9_000)]
    await vi.advanceTimersByTimeAsync(9_000)
    await vi.runAllTimersAsync()
    await Promise.all(pumps.map(p => p.done))
    const total = pumps.reduce((n, p) => n + p.bytes, 0)
    const want = [3, 0.5, 1].map(w => total * w / 4.5)
    pumps.forEach((p, i) => { expect(Math.abs(p.bytes - want[i])).toBeLessThan(0.06 * want[i] + 64 * KiB) })
  })

  it('is work-conserving: a share that stops asking leaves its part to the others', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: MiB, burst: 64 * KiB, now: () => Date.now() })
    const a = pump(t.share(), 64 * KiB, 10_000)
    const b = pump(t.share(), 16 * KiB, 10_000)
    const c = pump(t.share(), 64 * KiB, 4_000)
    await vi.advanceTimersByTimeAsync(4_000)
    const [a4, b4] = [a.bytes, b.bytes]
    for (const p of [a, b, c]) expect(Math.abs(p.bytes - (4 * MiB) / 3)).toBeLessThan(0.05 * (4 * MiB) / 3)
    await vi.advanceTimersByTimeAsync(6_000)
    await vi.runAllTimersAsync()
    await Promise.all([a.done, b.done, c.done])
    // the last 6 s: half the rate each, none of it lost
    for (const got of [a.bytes - a4, b.bytes - b4]) expect(Math.abs(got - 3 * MiB)).toBeLessThan(0.05 * 3 * MiB)
  })

  it('a share that was idle gets no credit for it: it joins in turn, not with a burst', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: MiB, burst: 64 * KiB, now: () => Date.now() })
    const a = pump(t.share(), 64 * KiB, 6_000)
    await vi.advanceTimersByTimeAsync(3_000)
    const late = pump(t.share(), 64 * KiB, 6_000)
    const a3 = a.bytes
    await vi.advanceTimersByTimeAsync(3_000)
    await vi.runAllTimersAsync()
    await Promise.all([a.done, late.done])
    expect(Math.abs((a.bytes - a3) - late.bytes)).toBeLessThanOrEqual(2 * 64 * KiB)
  })

  it('tryTake never overtakes a waiting share', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: MiB, burst: 64 * KiB, now: () => Date.now() })
    const [a, b] = [t.share(), t.share()]
    expect(a.tryTake(64 * KiB)).toBe(true)
    const waiting = b.take(16 * KiB)
    await vi.advanceTimersByTimeAsync(10) // 10 KiB due: not enough for b
    expect(a.tryTake(1)).toBe(false)
    await vi.advanceTimersByTimeAsync(10)
    await waiting
  })

  it('refund: tokens of a block not sent go to whoever waits, and the share is not charged', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: 64 * KiB, burst: 64 * KiB, now: () => Date.now() })
    const [a, b] = [t.share(), t.share()]
    expect(a.tryTake(64 * KiB)).toBe(true)
    let served = false
    const waiting = b.take(64 * KiB).then(() => { served = true })
    await vi.advanceTimersByTimeAsync(0)
    expect(served).toBe(false)
    a.refund(64 * KiB) // the block was cancelled before it went out
    await waiting // at once, no time passed
    expect(Date.now()).toBe(0)
    // a was not charged: it goes before b in the next round
    const order: string[] = []
    const pb = b.take(64 * KiB).then(() => order.push('b'))
    const pa = a.take(64 * KiB).then(() => order.push('a'))
    await vi.advanceTimersByTimeAsync(2_100)
    await Promise.all([pa, pb])
    expect(order).toEqual(['a', 'b'])
  })

  it('an aborted take does not charge its share', async () => {
    vi.useFakeTimers({ now: 0 })
    const t = new Throttle({ rate: 64 * KiB, burst: 64 * KiB, now: () => Date.now() })
    const [a, b] = [t.share(), t.share()]
    expect(a.tryTake(64 * KiB)).toBe(true)
    const ahead = Promise.all([b.take(64 * KiB), b.take(64 * KiB)]) // b has had one block more
    await vi.advanceTimersByTimeAsync(2_000)
    await ahead
    const ac = new AbortController()
    const aborted = a.take(64 * KiB, ac.signal).catch((err: unknown) => err)
    ac.abort(new Error('cancelled'))
    expect(await aborted).toEqual(new Error('cancelled'))
    const order: string[] = []
    const pb = b.take(64 * KiB).then(() => order.push('b'))
    const pa = a.take(64 * KiB).then(() => order.push('a'))
    await vi.advanceTimersByTimeAsync(2_100)
    await Promise.all([pa, pb])
    expect(order).toEqual(['a', 'b']) // charged for the aborted take, a would come after b
  })

  it('without a cap a share is a constant that never waits', async () => {
    const t = new Throttle({ rate: 0 })
    expect(t.share()).toBe(t.share())
    expect(t.share().tryTake(1 << 30)).toBe(true)
    await t.share().take(1 << 30)
  })
})
