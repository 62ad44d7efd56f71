/**
 * Benchmark: does tit-for-tat bite? A heterogeneous swarm on loopback, real processes
 * (`bitswarm tracker`, `bitswarm seed`, `bitswarm get --json --seed`, all `--no-dht` on
 * 127.0.0.1, fresh tracker and state directories every run), RUNS runs (default 3).
 *
 * The swarm: one seeder capped at FAIR_SEED_MIB (default 4) MiB/s; six honest leechers in three
 * classes of upload cap, 1, 2 and 4 MiB/s, two of each; one free-rider capped at 1 KiB/s (it takes
 * and gives next to nothing). Every leecher has `--seed` (stays after completing) and they are
 * spawned together, in a random order each run. File: FAIR_MIB (default 128) MiB. FAIR_TRACE=1
 * prints each peer's downloaded/uploaded MiB and unchokedBy every 2.5 s of every run.
 *
 * Rates come from each peer's `stats` events (every 0.5 s; `downloaded` is interpolated linearly
 * between two events) and its `manifest` and `complete` events, timed as we read them.
 *  - download rate while leeching: bytes downloaded by `complete` / (`manifest` → `complete`);
 *  - the free-rider's rate while the honest leechers leech: its bytes downloaded by the last
 *    honest `complete` / (its `manifest` → the last honest `complete`);
 *  - completion time: the leechers' spawn → `complete`;
 *  - given / taken: `uploaded` / `downloaded` of each peer's last `stats` event, read when the
 *    free-rider completes (the end of a run).
 *
 * Goals, checked in every run:
 *  1. the free-rider's rate while the honest leechers leech ≤ ½ the median of the honest
 *     leechers' rates while leeching;
 *  2. completion order follows upload capacity: Spearman's ρ between upload cap and earliness of
 *     completion over the six honest leechers ≥ 0.8. Ties (two leechers per cap) take the mean of
 *     the ranks they span and ρ is the Pearson correlation of the ranks, so a perfect order gives
 *     ρ = 0.956 (not 1), one swap across adjacent classes 0.837, two such swaps 0.717;
 *  3. the last honest `complete` (from spawn) ≤ 1.2 × the Kumar–Ross bound
 *         T* = max( F/u_s , N·F/(u_s + Σu_i) ),   d_min = ∞,
 *     with N = 7: the free-rider is a downloader too and the swarm must give it F in the end (it
 *     cannot be starved: optimistic unchokes and the seeder's rotation serve it), so it counts,
 *     with its 1 KiB/s in Σu_i. The bound for the six honest alone (free-rider not served at all)
 *     is shown too, as the stricter reference.
 * Also: the free-rider's completion time and its progress (share of pieces) at the median honest
 * completion (the mean of the 3rd and 4th honest completion times), and how many peers unchoked it.
 *
 * Results: bench/results/fairness.md (also printed) and bench/results/fairness.json.
 */
import '../src/polyfill.js'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import {
  closeBaseDir, CORES, cpuSeconds, dataFile, envNumber, kumarRoss, median, MiB, mibps, openBaseDir,
  type Proc, RESULTS, resultsHeader, secs, TimeoutError, withRun
} from './procs.js'

const RUNS = Math.round(envNumber('RUNS', 3))
const FAIR_MIB = envNumber('FAIR_MIB', 128)
const SEED_CAP_MIB = envNumber('FAIR_SEED_MIB', 4)
const CLASSES_MIB = [1, 2, 4]
const PER_CLASS = 2
const FREE_RIDER_RATE = 1024
const STATS_INTERVAL = '0.5'

interface PeerSpec { name: string, cls: string, cap: number, rate: string, honest: boolean }

const PEERS: PeerSpec[] = [
  ...CLASSES_MIB.flatMap(c => Array.from({ length: PER_CLASS }, (_, k): PeerSpec =>
    ({ name: `up${c}MiB-${k + 1}`, cls: `${c} MiB/s`, cap: c * MiB, rate: `${c}MiB`, honest: true }))),
  { name: 'free-rider', cls: 'free-rider', cap: FREE_RIDER_RATE, rate: '1KiB', honest: false }
]
const HONEST = PEERS.filter(p => p.honest)
const FREE_RIDER = PEERS.find(p => !p.honest) as PeerSpec

const F = Math.round(FAIR_MIB * MiB)
const US = SEED_CAP_MIB * MiB
const T_STAR = kumarRoss(F, US, PEERS.map(p => p.cap))
const T_STAR_HONEST = kumarRoss(F, US, HONEST.map(p => p.cap))
const TIMEOUT_MS = 120_000 + 4 * 1000 * T_STAR
/** How long after the last honest `complete` we wait for the free-rider's. */
const FREE_RIDER_WAIT_MS = 30_000 + 2 * 1000 * T_STAR

// ---------------------------------------------------------------------------------------------
// figures

/** A numeric field of `p`'s `stats` events at time `t`, linear between the two events around it. */
function statAt (p: Proc, t: number, field: string): number {
  let prev: { at: number, v: number } | undefined
  for (const { at, e } of p.events) {
    if (e.event !== 'stats') continue
    const v = Number(e[field])
    if (at >= t) {
      if (prev == null) return at === t ? v : 0
      return prev.v + (v - prev.v) * (t - prev.at) / Math.max(1e-9, at - prev.at)
    }
    prev = { at, v }
  }
  return prev?.v ?? 0
}

/** 1-based ranks, ties given the mean of the ranks they span. */
function ranks (xs: number[]): number[] {
  const idx = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x)
  const r = new Array<number>(xs.length)
  for (let i = 0; i < idx.length;) {
    let j = i
    while (j + 1 < idx.length && idx[j + 1].x === idx[i].x) j++
    for (let k = i; k <= j; k++) r[idx[k].i] = (i + j) / 2 + 1
    i = j + 1
  }
  return r
}

/** Spearman's ρ with ties: the Pearson correlation of the (mean-of-ties) ranks. */
function spearman (xs: number[], ys: number[]): number {
  const [rx, ry] = [ranks(xs), ranks(ys)]
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length
  const [mx, my] = [mean(rx), mean(ry)]
  let [sxy, sxx, syy] = [0, 0, 0]
  for (let i = 0; i < rx.length; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my)
    sxx += (rx[i] - mx) ** 2
    syy += (ry[i] - my) ** 2
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy)
}

function shuffled<T> (xs: T[]): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

interface PeerResult {
  name: string
  cls: string
  /** upload cap, bytes/s */
  cap: number
  /** s from the leechers' spawn */
  manifest: number
  /** s from the leechers' spawn; null if it never completed (free-rider only) */
  complete: number | null
  /** MiB/s, `manifest` → `complete` (the free-rider's: → the last honest `complete`) */
  rate: number
  /** MiB, at the end of the run */
  given: number
  taken: number
}

type Values = Record<string, number>

interface RunResult { order: string[], peers: PeerResult[], seederGiven: number, values: Values }

interface Outcome { run: number, status: 'ok' | 'timeout' | 'failed', message?: string, result?: RunResult }

async function once (): Promise<RunResult> {
  const file = await dataFile(FAIR_MIB)
  return await withRun(TIMEOUT_MS, async (run) => {
    const announce = await run.tracker()
    const seeder = await run.seeder(file, announce, ['--max-upload-rate', `${SEED_CAP_MIB}MiB`])
    // the seeder's hashing of the file before it seeds is not part of the swarm's work
    const seederCpu0 = await cpuSeconds(seeder.proc.child.pid)
    // a random spawn order, so that no class is always first to the seeder
    const order = shuffled(PEERS)
    const t0 = performance.now()
    const procs = new Map<PeerSpec, Proc>()
    for (const spec of order) {
      procs.set(spec, run.leecher(PEERS.indexOf(spec), seeder.cid, announce,
        ['--seed', '--max-upload-rate', spec.rate, '--stats-interval', STATS_INTERVAL], spec.name))
    }
    const proc = (spec: PeerSpec): Proc => procs.get(spec) as Proc
    const manifests = new Map(await Promise.all(PEERS.map(async s =>
      [s, await proc(s).until(e => e.event === 'manifest', run.deadline, 'manifest')] as const)))
    const completes = new Map(await Promise.all(HONEST.map(async s =>
      [s, await proc(s).until(e => e.event === 'complete', run.deadline, 'complete')] as const)))
    const cpu = (await Promise.all([seeder.proc, ...procs.values()].map(async p => await cpuSeconds(p.child.pid)))).reduce((a, b) => a + b, 0) - seederCpu0
    for (const c of completes.values()) if (Number(c.e.bytes) !== F) throw new Error(`complete with ${String(c.e.bytes)} bytes, expected ${F}`)

    const honestAt = [...completes.values()].map(c => c.at).sort((a, b) => a - b)
    const lastHonest = honestAt[honestAt.length - 1]
    const medianHonest = median(honestAt) as number
    const fr = proc(FREE_RIDER)
    let frComplete: number | undefined
    try {
      const c = await fr.until(e => e.event === 'complete', Math.min(run.deadline, lastHonest + FREE_RIDER_WAIT_MS), 'complete')
      if (Number(c.e.bytes) !== F) throw new Error(`free-rider complete with ${String(c.e.bytes)} bytes, expected ${F}`)
      frComplete = c.at
    } catch (err) {
      // a free-rider that never finishes is a finding, not a failed run
      if (!(err instanceof TimeoutError)) throw err
    }

    if (process.env.FAIR_TRACE != null) {
      console.log('manifest at', PEERS.map(s => `${s.name}=${secs((manifests.get(s) as { at: number }).at - t0).toFixed(1)}`).join(' '))
      for (let t = t0 + 2500; t < lastHonest + 2500; t += 2500) {
        console.log(secs(t - t0).toFixed(1).padStart(5), PEERS.map(s => `${s.name.replace('MiB-', '.')}=${(statAt(proc(s), t, 'downloaded') / MiB).toFixed(0).padStart(2)}/${(statAt(proc(s), t, 'uploaded') / MiB).toFixed(0).padStart(2)}/${String(statAt(proc(s), t, 'unchokedBy').toFixed(0))}`).join(' '))
      }
    }
    const rateOf = (spec: PeerSpec): number => {
      const from = (manifests.get(spec) as { at: number }).at
      const to = spec.honest ? (completes.get(spec) as { at: number }).at : lastHonest
      return mibps(statAt(proc(spec), to, 'downloaded'), to - from)
    }
    const final = (p: Proc, field: string): number => Number(p.last('stats')?.e[field] ?? NaN) / MiB
    const peers = PEERS.map((spec): PeerResult => {
      const done = spec.honest ? (completes.get(spec) as { at: number }).at : frComplete
      return {
        name: spec.name,
        cls: spec.cls,
        cap: spec.cap,
        manifest: secs((manifests.get(spec) as { at: number }).at - t0),
        complete: done == null ? null : secs(done - t0),
        rate: rateOf(spec),
        given: final(proc(spec), 'uploaded'),
        taken: final(proc(spec), 'downloaded')
      }
    })
    const honestRates = HONEST.map(rateOf)
    const honestMedianRate = median(honestRates) as number
    const frRate = rateOf(FREE_RIDER)
    // peers that unchoked the free-rider, over its stats while the honest leechers leeched
    const frUnchokedBy = median(fr.events.filter(x => x.e.event === 'stats' && x.e.phase === 'downloading' && x.at <= lastHonest).map(x => Number(x.e.unchokedBy))) ?? NaN
    const firstManifest = Math.min(...[...manifests.values()].map(m => m.at))
    return {
      order: order.map(s => s.name),
      peers,
      seederGiven: final(seeder.proc, 'uploaded'),
      values: {
        frRatio: frRate / honestMedianRate,
        spearman: spearman(HONEST.map(s => s.cap), HONEST.map(s => -(completes.get(s) as { at: number }).at)),
        ksRatio: secs(lastHonest - t0) / T_STAR,
        frRate,
        honestMedianRate,
        lastHonest: secs(lastHonest - t0),
        transferRatio: secs(lastHonest - firstManifest) / T_STAR,
        ksHonestRatio: secs(lastHonest - t0) / T_STAR_HONEST,
        medianHonest: secs(medianHonest - t0),
        frProgressAtMedian: 100 * statAt(fr, medianHonest, 'progress'),
        frUnchokedBy,
        frComplete: frComplete == null ? NaN : secs(frComplete - t0),
        frAfterLast: frComplete == null ? NaN : secs(frComplete - lastHonest),
        cpuFloorRatio: cpu / CORES / T_STAR
      }
    }
  })
}

// ---------------------------------------------------------------------------------------------
// reporting

interface Figure { key: string, label: string, unit: string, digits: number, goal?: { op: '>=' | '<=', value: number } }

const FIGURES: Figure[] = [
  { key: 'frRatio', label: 'free-rider rate while honest leechers leech / honest median rate', unit: '×', digits: 2, goal: { op: '<=', value: 0.5 } },
  { key: 'spearman', label: 'Spearman ρ, upload cap vs completion order (6 honest; max 0.956 with ties)', unit: '', digits: 3, goal: { op: '>=', value: 0.8 } },
  { key: 'ksRatio', label: `last honest complete / T* (T* = ${T_STAR.toFixed(2)} s, N = 7)`, unit: '×', digits: 2, goal: { op: '<=', value: 1.2 } },
  { key: 'frRate', label: 'free-rider: download rate while honest leechers leech', unit: 'MiB/s', digits: 2 },
  { key: 'honestMedianRate', label: 'honest leechers: median download rate while leeching', unit: 'MiB/s', digits: 2 },
  { key: 'medianHonest', label: 'median honest complete (mean of 3rd and 4th), from spawn', unit: 's', digits: 2 },
  { key: 'lastHonest', label: 'last honest complete, from spawn', unit: 's', digits: 2 },
  { key: 'frProgressAtMedian', label: 'free-rider progress at the median honest complete', unit: '% pieces', digits: 0 },
  { key: 'frUnchokedBy', label: 'free-rider: peers unchoking it (median of its stats until the last honest complete; of 7)', unit: 'peers', digits: 1 },
  { key: 'frComplete', label: 'free-rider complete, from spawn', unit: 's', digits: 2 },
  { key: 'frAfterLast', label: 'free-rider complete − last honest complete', unit: 's', digits: 2 },
  { key: 'transferRatio', label: 'first `manifest` → last honest complete / T*', unit: '×', digits: 2 },
  { key: 'ksHonestRatio', label: `last honest complete / T*₆ (the 6 honest alone, T*₆ = ${T_STAR_HONEST.toFixed(2)} s)`, unit: '×', digits: 2 },
  { key: 'cpuFloorRatio', label: `CPU floor (all peers' CPU to the last honest complete / ${CORES} cores) / T*`, unit: '×', digits: 2 }
]

const met = (f: Figure, v: number): boolean | null =>
  f.goal == null ? null : !Number.isFinite(v) ? false : f.goal.op === '>=' ? v >= f.goal.value : v <= f.goal.value
const mark = (ok: boolean | null): string => ok === true ? ' ✅' : ok === false ? ' ❌' : ''
const fmt = (v: number | null | undefined, d: number): string => v == null || !Number.isFinite(v) ? '—' : v.toFixed(d)

function spread (xs: number[], d: number): string {
  const v = xs.filter(x => Number.isFinite(x))
  if (v.length === 0) return '—'
  return `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}–${fmt(Math.max(...v), d)})`
}

/** `1 · 2 · FR · 4 …`: who completed when, by upload cap, so a low ρ can be read at a glance. */
function completionOrder (r: RunResult): string {
  return r.peers.filter(p => p.complete != null).sort((a, b) => (a.complete ?? 0) - (b.complete ?? 0))
    .map(p => p.cap >= MiB ? String(p.cap / MiB) : 'FR').join(' · ') +
    (r.peers.some(p => p.complete == null) ? ' (FR did not complete)' : '')
}

function markdown (outcomes: Outcome[], header: Record<string, string>): string {
  const ok = outcomes.filter(o => o.result != null).map(o => o.result as RunResult)
  const lines = ['# bitswarm fairness benchmark (loopback)', '']
  for (const [k, v] of Object.entries(header)) lines.push(`- ${k}: ${v}`)
  lines.push('', `Per class: every peer of the class in every finished run (${ok.length} run${ok.length === 1 ? '' : 's'}), median (min–max).`, '',
    '| class | upload cap | download rate while leeching (MiB/s) | complete, from spawn (s) | given (MiB) | taken (MiB) | given / taken |',
    '|---|---:|---:|---:|---:|---:|---:|')
  lines.push(`| seeder | ${SEED_CAP_MIB} MiB/s | | | ${spread(ok.map(r => r.seederGiven), 0)} | 0 | |`)
  for (const cls of [...new Set(PEERS.map(p => p.cls))]) {
    const ps = ok.flatMap(r => r.peers.filter(p => p.cls === cls))
    const cap = PEERS.find(p => p.cls === cls)?.cap ?? 0
    const rateNote = cls === FREE_RIDER.cls ? ' ¹' : ''
    lines.push(`| ${cls} | ${cap >= MiB ? `${cap / MiB} MiB/s` : `${cap / 1024} KiB/s`} | ${spread(ps.map(p => p.rate), 2)}${rateNote} | ${spread(ps.map(p => p.complete ?? NaN), 1)} | ${spread(ps.map(p => p.given), 1)} | ${spread(ps.map(p => p.taken), 1)} | ${spread(ps.map(p => p.given / p.taken), 2)} |`)
  }
  lines.push('', '¹ the free-rider\'s rate is over its `manifest` → the last honest `complete`, while the honest leechers still leech.', '')
  lines.push(`| figure | ${outcomes.map(o => `run ${o.run}`).join(' | ')} | median | unit | goal |`,
    `|---|${outcomes.map(() => '---:|').join('')}---:|---|---|`)
  for (const f of FIGURES) {
    const cells = outcomes.map(o => o.result == null ? o.status : `${fmt(o.result.values[f.key], f.digits)}${mark(met(f, o.result.values[f.key]))}`)
    const vs = ok.map(r => r.values[f.key]).filter(v => Number.isFinite(v))
    let goal = ''
    if (f.goal != null) {
      const n = outcomes.filter(o => o.result != null && met(f, o.result.values[f.key]) === true).length
      goal = `${f.goal.op === '>=' ? '≥' : '≤'} ${f.goal.value}: ${n}/${outcomes.length} runs${mark(n === outcomes.length)}`
    }
    lines.push(`| ${f.label} | ${cells.join(' | ')} | ${fmt(median(vs), f.digits)} | ${f.unit} | ${goal} |`)
  }
  const notes = [
    `F = ${FAIR_MIB} MiB, u_s = ${SEED_CAP_MIB} MiB/s, honest u_i = ${HONEST.map(p => p.cap / MiB).join(', ')} MiB/s, free-rider 1 KiB/s, d_min = ∞: T* = max(F/u_s = ${(F / US).toFixed(2)} s, 7·F/(u_s+Σu_i) = ${(7 * F / (US + PEERS.reduce((a, p) => a + p.cap, 0))).toFixed(2)} s) = ${T_STAR.toFixed(2)} s. The free-rider downloads F too, so it is one of the N = 7; T*₆ (${T_STAR_HONEST.toFixed(2)} s) leaves it out.`,
    'Download rate while leeching = bytes downloaded (the `stats` line written with `complete`) / (`manifest` → `complete`). Given / taken = `uploaded` / `downloaded` of the last `stats` line at the end of the run (the free-rider\'s `complete`), so the honest leechers\' "given" includes what they seeded after completing.',
    'Spearman ρ: ranks of upload cap (ties: mean rank) against ranks of earliness of completion, Pearson correlation of the ranks; with two peers per cap a perfect order gives 0.956, one swap across adjacent classes 0.837.',
    ...outcomes.filter(o => o.result != null).map(o => `run ${o.run}, completion order (upload cap in MiB/s; FR = free-rider): ${completionOrder(o.result as RunResult)}.`),
    ...outcomes.filter(o => o.status !== 'ok').map(o => `run ${o.run}: ${o.status}: ${o.message ?? ''}`),
    ...outcomes.filter(o => o.result != null && !Number.isFinite(o.result.values.frComplete)).map(o => `run ${o.run}: the free-rider had not completed ${(FREE_RIDER_WAIT_MS / 1000).toFixed(0)} s after the last honest leecher.`)
  ]
  lines.push('', ...notes.map(n => `- ${n}`))
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const started = performance.now()
  await openBaseDir('bitswarm-fairness-bench-')
  console.log(`fairness: ${FAIR_MIB} MiB, seeder ${SEED_CAP_MIB} MiB/s, leechers ${CLASSES_MIB.map(c => `2×${c}`).join(' + ')} MiB/s + free-rider 1 KiB/s; T* = ${T_STAR.toFixed(2)} s; ${RUNS} runs`)
  const outcomes: Outcome[] = []
  try {
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now()
      let o: Outcome
      try {
        o = { run: r + 1, status: 'ok', result: await once() }
      } catch (err) {
        const e = err as Error
        o = { run: r + 1, status: e instanceof TimeoutError ? 'timeout' : 'failed', message: e.message }
      }
      outcomes.push(o)
      const shown = o.result == null ? '' : ' — ' + FIGURES.slice(0, 10).map(f => `${f.key} ${fmt(o.result?.values[f.key], f.digits)}${mark(met(f, o.result?.values[f.key] ?? NaN))}`).join(', ')
      console.log(`  run ${r + 1}/${RUNS} (${((performance.now() - t) / 1000).toFixed(1)} s): ${o.status}${o.message != null ? ` — ${o.message}` : ''}${shown}`)
    }
  } finally {
    await closeBaseDir()
  }
  const header = resultsHeader(started, {
    swarm: `one seeder (${SEED_CAP_MIB} MiB/s), ${HONEST.length} honest leechers (${CLASSES_MIB.map(c => `${PER_CLASS} × ${c} MiB/s`).join(', ')}, \`--seed\`), one free-rider (1 KiB/s), ${FAIR_MIB} MiB, spawned together, default choker`,
    runs: `${RUNS}; goals checked in every run`
  })
  const md = markdown(outcomes, header)
  await mkdir(RESULTS, { recursive: true })
  await writeFile(join(RESULTS, 'fairness.md'), md)
  await writeFile(join(RESULTS, 'fairness.json'), JSON.stringify({
    ...header,
    cores: CORES,
    config: { RUNS, FAIR_MIB, FAIR_SEED_MIB: SEED_CAP_MIB, classesMiB: CLASSES_MIB, perClass: PER_CLASS, freeRiderRate: FREE_RIDER_RATE, tStar: T_STAR, tStarHonest: T_STAR_HONEST },
    figures: FIGURES,
    results: outcomes.map(o => ({ ...o, goals: o.result == null ? null : Object.fromEntries(FIGURES.filter(f => f.goal != null).map(f => [f.key, met(f, o.result?.values[f.key] ?? NaN)])) }))
  }, (_, v: unknown) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2) + '\n')
  console.log('\n' + md)
}

await main()
