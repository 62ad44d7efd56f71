/**
 * Tit-for-tat at swarm level (issue 9): real libp2p nodes on 127.0.0.1 and a real tracker, the
 * issue's swarm scaled down (a seeder capped at twice a leecher's uplink, seven honest leechers,
 * the default slots, one free-rider that uploads at 1 KiB/s) with short choker intervals. The
 * free-rider must get clearly less while the honest leechers are leeching, and must still
 * complete. It is held to 0.7x the honest rate, not the benchmark's one half: with choker
 * intervals this short, its trials and first optimistic turns, and the seeder's rotation, are a
 * larger part of a 12 s run (0.43-0.52x measured; `npm run bench:fairness` carries the goal).
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed, within } from '../helpers/testbed.js'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 6 * MiB
const HONEST = 7
const SAMPLE_MS = 100

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

describe('fairness: a free-rider among honest leechers', () => {
  const bed = useTestbed('fair', { tracker: true })

  it('gets clearly less than the honest leechers while they leech, and still completes', async () => {
    const file = join(bed.dir, 'data.bin')
    await writeFile(file, randomBytes(SIZE))
    const want = await sha256File(file)
    const options = { ...bed.base, choker: { rechokeInterval: 500, optimisticInterval: 1500 } }
    const seeder = await bed.start(Peer.seed(file, { ...options, maxUploadRate: 1 * MiB }))

    const honest: Peer[] = []
    for (let i = 0; i < HONEST; i++) {
      honest.push(bed.keep(await Peer.get(seeder.cid.toString(), join(bed.dir, `h${i}`), { ...options, maxUploadRate: 512 * KiB })))
    }
    const rider = bed.keep(await Peer.get(seeder.cid.toString(), join(bed.dir, 'rider'), { ...options, maxUploadRate: 1 * KiB }))
    const leechers = [...honest, rider]

    const t0 = Date.now()
    const doneAt = new Map<Peer, number>()
    const finished = leechers.map(async p => {
      const d = await completed(p)
      doneAt.set(p, Date.now() - t0)
      return d
    })
    // bytes each leecher held, sampled, to read their rates over the same span afterwards
    const samples: Array<{ t: number, got: number[], riderUnchokedBy: number }> = []
    const sampler = setInterval(() => {
      samples.push({ t: Date.now() - t0, got: leechers.map(p => p.stats().downloaded), riderUnchokedBy: rider.stats().unchokedBy })
    }, SAMPLE_MS)
    bed.defer(() => { clearInterval(sampler) })
    await Promise.all(leechers.map(async p => { await p.start() }))

    const done = await within(Promise.all(finished), 60_000, () => `not done: ${leechers.filter(p => !doneAt.has(p)).length} leechers`)
    clearInterval(sampler)
    for (const d of done) expect(await sha256File(d.path)).toBe(want)

    // while every honest leecher is still leeching: from the first sample with data moving to
    // the first honest completion
    const firstHonestDone = Math.min(...honest.map(p => doneAt.get(p) as number))
    const span = samples.filter(s => s.t <= firstHonestDone)
    const start = span.find(s => s.got.some(b => b > 0)) ?? span[0]
    const end = span[span.length - 1]
    const seconds = (end.t - start.t) / 1000
    const rates = leechers.map((_, i) => (end.got[i] - start.got[i]) / seconds)
    const honestMedian = median(rates.slice(0, HONEST))
    const riderRate = rates[HONEST]
    const medianHonestDone = median(honest.map(p => doneAt.get(p) as number))
    const riderAtMedian = samples.filter(s => s.t <= medianHonestDone).at(-1)?.got[HONEST] ?? 0
    const riderUnchokedBy = median(span.map(s => s.riderUnchokedBy))
    console.log(`fairness: honest median ${(honestMedian / KiB).toFixed(0)} KiB/s, free-rider ${(riderRate / KiB).toFixed(0)} KiB/s ` +
      `(${(riderRate / honestMedian).toFixed(2)}x) over ${seconds.toFixed(1)} s; free-rider ${(100 * riderAtMedian / SIZE).toFixed(0)}% done ` +
      `when the median honest leecher completed (${(medianHonestDone / 1000).toFixed(1)} s), ` +
      `done at ${((doneAt.get(rider) as number) / 1000).toFixed(1)} s; unchoked by a median of ${riderUnchokedBy} peers meanwhile`)

    expect(seconds).toBeGreaterThan(2) // a span long enough to measure
    expect(riderRate).toBeLessThan(honestMedian * 0.7)
    expect(riderAtMedian).toBeLessThan(SIZE * 0.7)
    // it does finish (the test got here), after most honest leechers
    expect(doneAt.get(rider)).toBeGreaterThan(medianHonestDone)
  })
})
