import { describe, expect, it } from 'vitest'
import { RequestBackoff } from '../../src/swarm/request-backoff.js'

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('RequestBackoff', () => {
  it('a peer in good standing may be asked anything', () => {
    const b = new RequestBackoff({ now: clock().now })
    expect(b.mayRequest('p')).toBe(true)
    expect(b.depthLimit('p')).toBe(Infinity)
    expect(b.episodes('p')).toBe(0)
  })

  it('a burst of rejects is one pause; pauses double while it keeps refusing, up to the cap', () => {
    const c = clock()
    const b = new RequestBackoff({ now: c.now, baseMs: 1000, maxMs: 8000 })
    expect(b.refused('p')).toBe(true)
    for (let i = 0; i < 100; i++) expect(b.refused('p')).toBe(false) // the rest of the pipeline
    expect(b.mayRequest('p')).toBe(false)
    c.advance(999)
    expect(b.mayRequest('p')).toBe(false)
    c.advance(1)
    expect(b.mayRequest('p')).toBe(true)
    expect(b.depthLimit('p')).toBe(4) // a probe, not a full pipeline
    const pauses: number[] = []
    for (let i = 0; i < 6; i++) {
      expect(b.refused('p')).toBe(true)
      let waited = 0
      while (!b.mayRequest('p')) { c.advance(100); waited += 100 }
      pauses.push(waited)
    }
    expect(pauses).toEqual([2000, 4000, 8000, 8000, 8000, 8000])
    expect(b.episodes('p')).toBe(7)
  })

  it('a probe answered in full forgives the peer; one block then refusals does not', () => {
    const c = clock()
    const b = new RequestBackoff({ now: c.now, probeDepth: 4 })
    b.refused('p')
    c.advance(1000)
    b.delivered('p')
    b.refused('p') // one block, then a reject: still refusing
    expect(b.episodes('p')).toBe(2)
    c.advance(2000)
    for (let i = 0; i < 4; i++) b.delivered('p')
    expect(b.episodes('p')).toBe(0)
    expect(b.depthLimit('p')).toBe(Infinity)
  })

  it('peers are independent, and forget() drops one', () => {
    const b = new RequestBackoff({ now: clock().now })
    b.refused('a')
    expect(b.mayRequest('b')).toBe(true)
    b.forget('a')
    expect(b.mayRequest('a')).toBe(true)
  })
})

describe('RequestBackoff.useless', () => {
  it('one pause (a choke\'s rejects) is not useless; a refused probe is, until its pause ends', () => {
    const c = clock()
    const b = new RequestBackoff({ now: c.now, baseMs: 1000 })
    b.refused('p')
    expect(b.useless('p')).toBe(false)
    c.advance(1000)
    b.refused('p') // the probe was refused too
    expect(b.useless('p')).toBe(true)
    c.advance(2000)
    expect(b.useless('p')).toBe(false) // time for another probe
  })
})
