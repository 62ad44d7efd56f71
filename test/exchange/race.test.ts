import { describe, expect, it } from 'vitest'
import { DialRefusedError } from '../../src/discovery/guarded-dial.js'
import type { PeerAddress } from '../../src/discovery/types.js'
import { ManifestRace, RaceStoppedError } from '../../src/exchange/race.js'

function peer (id: string, host = '10.0.0.1', port = 1): PeerAddress {
  return { peerId: id, multiaddrs: [`/ip4/${host}/tcp/${port}`] }
}

/** An `ask` that never answers (a tarpit) until its signal fires. */
async function never (signal: AbortSignal): Promise<never> {
  return await new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => { reject(signal.reason as Error) }, { once: true })
  })
}

describe('ManifestRace', () => {
  it('asks several peers at once: 40 tarpits do not hold up the one honest peer', async () => {
    const asked: string[] = []
    const race = new ManifestRace<string>({
      ask: async (p, signal) => {
        asked.push(p.peerId)
        if (p.peerId === 'honest') return 'manifest'
        return await never(signal)
      },
      parallel: 8,
      timeout: 100
    })
    const fakes = Array.from({ length: 40 }, (_, i) => peer(`fake${i}`, '10.6.6.6', i + 1))
    race.add([...fakes, peer('honest', '10.0.0.2')])
    // the honest peer is on a host of its own: it is asked in the first round, not the sixth
    expect(await race.result).toBe('manifest')
    expect(asked.indexOf('honest')).toBeLessThan(8)
    // the losers' questions end (aborted) right after
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(race.inFlight).toBe(0)
  })

  it('widens as tarpits hold their places (one more per slow failure, up to maxParallel); fast failures do not widen it', async () => {
    const race = new ManifestRace<string>({
      ask: async (p, signal) => {
        if (p.peerId.startsWith('fast')) throw new Error('not found')
        return await never(signal)
      },
      parallel: 2,
      maxParallel: 5,
      slow: 15,
      timeout: 40
    })
    race.add([peer('fast1'), peer('fast2', '10.0.0.2'), peer('fast3', '10.0.0.3')])
    await new Promise(resolve => setTimeout(resolve, 5))
    expect(race.width).toBe(2)
    race.add(Array.from({ length: 20 }, (_, i) => peer(`pit${i}`, '10.6.6.6', i + 1)))
    expect(race.inFlight).toBe(2)
    // each pit holds its place for 40 ms, then fails: 2, 3, 4, 5, 5 … at once
    await expect.poll(() => race.width, { timeout: 2000, interval: 10 }).toBe(5)
    expect(race.inFlight).toBeLessThanOrEqual(5)
    race.stop()
  })

  it('the first answer wins and the other questions are aborted', async () => {
    const aborted: string[] = []
    const race = new ManifestRace<string>({
      ask: async (p, signal) => {
        if (p.peerId === 'b') return await new Promise(resolve => setTimeout(() => { resolve('from b') }, 20))
        signal.addEventListener('abort', () => aborted.push(p.peerId))
        return await never(signal)
      },
      timeout: 10_000
    })
    race.add([peer('a', '10.0.0.1'), peer('b', '10.0.0.2'), peer('c', '10.0.0.3')])
    expect(await race.result).toBe('from b')
    expect(aborted.sort()).toEqual(['a', 'c'])
  })

  it('peers told of later join the race; nothing is asked twice at once', async () => {
    let calls = 0
    const race = new ManifestRace<string>({
      ask: async (p, signal) => {
        calls++
        if (p.peerId === 'late') return 'ok'
        return await never(signal)
      },
      parallel: 2,
      timeout: 50
    })
    race.add([peer('a'), peer('b')])
    race.add([peer('a'), peer('b')])
    expect(race.inFlight).toBe(2)
    expect(race.queued).toBe(0)
    expect(calls).toBe(2)
    race.add([peer('late', '10.0.0.9')])
    expect(await race.result).toBe('ok')
  })

  it('a peer that failed is asked again only after its retry delay, when told of again', async () => {
    let t = 0
    const asked: string[] = []
    const race = new ManifestRace<string>({
      ask: async (p) => { asked.push(p.peerId); throw new Error('not found') },
      retryDelay: 1000,
      now: () => t
    })
    race.add([peer('a')])
    await new Promise(resolve => setTimeout(resolve, 0))
    race.add([peer('a')])
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(asked).toEqual(['a'])
    t = 1000
    race.add([peer('a')])
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(asked).toEqual(['a', 'a'])
    // the delay doubles
    t = 2999
    race.add([peer('a')])
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(asked).toEqual(['a', 'a'])
    race.stop()
  })

  it('a peer that refused for a moment is asked again by itself, without being told of again', async () => {
    // a seeder's limit on new connections per host refuses a burst of newcomers; the tracker
    // names the seeder again only an interval (30 s) later
    let refusals = 1
    const race = new ManifestRace<string>({
      ask: async () => { if (refusals-- > 0) throw new Error('read ECONNRESET'); return 'manifest' },
      retryDelay: 50
    })
    race.add([peer('seeder')])
    expect(await race.result).toBe('manifest')
  })

  it('a retry timer that fires before the clock says it is due still asks again', async () => {
    // timers and Date.now() run on different clocks: a timer may fire a millisecond "early"
    let t = 0
    let refusals = 1
    const race = new ManifestRace<string>({
      ask: async () => { if (refusals-- > 0) throw new Error('read ECONNRESET'); return 'manifest' },
      retryDelay: 50,
      now: () => t++ === 0 ? 0 : 10 // the clock lags behind the timer
    })
    race.add([peer('seeder')])
    expect(await race.result).toBe('manifest')
  })

  it('stop() aborts what is in flight and rejects the result', async () => {
    let aborted = 0
    const race = new ManifestRace<string>({
      ask: async (_p, signal) => { signal.addEventListener('abort', () => { aborted++ }); return await never(signal) }
    })
    race.add([peer('a', '10.0.0.1'), peer('b', '10.0.0.2')])
    race.stop()
    await expect(race.result).rejects.toBeInstanceOf(RaceStoppedError)
    expect(aborted).toBe(2)
    race.add([peer('c')])
    expect(race.inFlight).toBe(0)
  })

  it('keeps a bounded queue, and does not log refusals by the dial guard', async () => {
    const lines: string[] = []
    const race = new ManifestRace<string>({
      ask: async (p, signal) => {
        if (p.peerId.startsWith('r')) throw new DialRefusedError('refused')
        return await never(signal)
      },
      parallel: 1,
      maxPeers: 10,
      timeout: 10_000,
      log: (m) => lines.push(m)
    })
    race.add(Array.from({ length: 50 }, (_, i) => peer(`p${i}`, '10.0.0.1', i + 1)))
    expect(race.queued).toBeLessThanOrEqual(10)
    race.stop()
    const r = new ManifestRace<string>({ ask: async () => { throw new DialRefusedError('refused') }, log: (m) => lines.push(m) })
    r.add([peer('r1'), peer('r2', '10.0.0.2')])
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(lines).toEqual([])
    r.stop()
  })
})
