/**
 * Benchmark: how fast does a bitswarm swarm move a file, on loopback, against what is possible?
 *
 * Real processes only (`bitswarm tracker`, `bitswarm seed`, `bitswarm get --json`; NDJSON events
 * on stdout), a fresh tracker and fresh temporary state directories for every run, all on
 * 127.0.0.1 with `--no-dht` (the tracker and peer exchange find the peers). Random files are
 * generated once per size. Each figure is the median of RUNS runs (default 3) with min and max.
 * Results: bench/results/latest.md (a Markdown table, also printed) and bench/results/latest.json.
 *
 * Scenarios (SCENARIOS="1,3" selects some):
 *  1. One seeder, one leecher, SIZE_MIB (default 256) MiB, no caps. Bitswarm throughput over
 *     two spans: leecher spawn → `complete` (end to end: process start, tracker, manifest,
 *     transfer, verification) and `manifest` → `complete` (the transfer). Baseline: one plain
 *     libp2p stream on the same stack (bench/raw-libp2p.ts; TCP + Noise + Yamux, 64 KiB chunks
 *     with backpressure) between two processes: dialer spawn → last byte received, and stream
 *     opening → last byte. Ratios bitswarm/raw for both spans; goal ≥ 0.8.
 *  2. One seeder, four leechers (started together, `--seed`, stopped after the last finishes),
 *     SIZE_MIB, no caps: wall time from the leechers' spawn to the last `complete`.
 *  3. Every peer `--max-upload-rate 20MiB`, one seeder, four leechers, SIZE_MIB: the last
 *     leecher's time against the Kumar–Ross lower bound for a swarm with file size F, N
 *     leechers, seeder upload u_s, leecher uploads u_i and slowest download d_min,
 *         T* = max( F/u_s , F/d_min , N·F/(u_s + Σu_i) )
 *     (here d_min = ∞; F = 256 MiB, N = 4, u = 20 MiB/s give T* = 12.8 s), and against
 *     client-server distribution N·F/u_s (51.2 s). Goal: time/T* ≤ 1.2.
 *  4. Memory: peak RSS (VmRSS from /proc/<pid>/status every 200 ms) of the seeder and of one
 *     leecher moving MEM_MIB (default 1024) MiB.
 *  5. Larger swarm: one seeder and LARGE_N (default 12) leechers, LARGE_MIB (default 64) MiB,
 *     every upload capped at LARGE_CAP_MIB (default 8) MiB/s: last leecher's time vs T*
 *     (T* = 8 s for these numbers: F/u_s = 8 s > N·F/((N+1)·u) = 7.4 s).
 *
 * CPU: every peer's user + system time (all threads, /proc/<pid>/stat) when the last leecher
 * completes, less what the seeder spent hashing the file before it seeded. Divided by the
 * machine's cores it is a floor under the wall time (the "CPU floor"): where that floor is above
 * 1.2 × T*, this machine cannot meet the goal at this CPU cost, whatever the protocol does.
 *
 * A run that exceeds its (generous) deadline is reported as timed out; every process is stopped
 * (SIGINT, then SIGKILL after a grace) at the end of each run, whatever happened.
 */
import '../src/polyfill.js'
import { createHash } from 'node:crypto'
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import {
  closeBaseDir, CORES, cpuSeconds, dataFile, envNumber, kumarRoss, LOOPBACK, median, MiB, mibps, openBaseDir,
  RESULTS, resultsHeader, rss, type Run, secs, TimeoutError, withRun
} from './procs.js'

export { kumarRoss }

/**
 * What every leecher must do beyond a raw receiver, whatever its protocol: hash every byte
 * (SHA-256, as it verifies pieces) and write it to a file. Measured here, in this process, in
 * 256 KiB pieces, as CPU (all threads) per MiB: reading the source file is measured apart and
 * taken off, and the copy is removed before returning.
 */
function hashAndWriteCpu (source: string, bytes: number): number {
  const piece = Buffer.allocUnsafeSlow(256 * 1024)
  const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
  const copy = `${source}.floor`
  const src = openSync(source, 'r')
  const dst = openSync(copy, 'w')
  try {
    // the source is in the page cache (every peer just read it): the read costs a copy
    let t = cpu()
    for (let at = 0; at < bytes; at += piece.length) readSync(src, piece, 0, Math.min(piece.length, bytes - at), at)
    const readMs = cpu() - t
    t = cpu()
    for (let at = 0; at < bytes; at += piece.length) {
      const n = readSync(src, piece, 0, Math.min(piece.length, bytes - at), at)
      createHash('sha256').update(piece.subarray(0, n)).digest()
      writeSync(dst, piece, 0, n, at)
    }
    return (cpu() - t - readMs) / (bytes / MiB)
  } finally {
    closeSync(src)
    closeSync(dst)
    unlinkSync(copy)
  }
}

const RAW = fileURLToPath(new URL('./raw-libp2p.js', import.meta.url))

const RUNS = Math.round(envNumber('RUNS', 3))
const SIZE_MIB = envNumber('SIZE_MIB', 256)
const MEM_MIB = envNumber('MEM_MIB', 1024)
const LARGE_MIB = envNumber('LARGE_MIB', 64)
const LARGE_N = Math.round(envNumber('LARGE_N', 12))
const CAP_MIB = envNumber('CAP_MIB', 20)
const LARGE_CAP_MIB = envNumber('LARGE_CAP_MIB', 8)
const SMALL_N = 4
const SCENARIOS = new Set((process.env.SCENARIOS ?? '1,2,3,4,5').split(',').map(s => Number(s.trim())).filter(n => n >= 1 && n <= 5))

// ---------------------------------------------------------------------------------------------
// figures

interface Metric {
  key: string
  label: string
  unit: string
  digits: number
  goal?: { op: '>=' | '<=', value: number }
}

type Values = Record<string, number>

interface Outcome { run: number, status: 'ok' | 'timeout' | 'failed', message?: string, values: Values }

interface Summary extends Metric { values: number[], median: number | null, min: number | null, max: number | null, met: boolean | null }

interface ScenarioReport { id: number, title: string, runs: Outcome[], metrics: Summary[], notes: string[] }

interface Scenario {
  id: number
  title: string
  metrics: Metric[]
  notes: string[]
  timeoutMs: number
  once: (run: number) => Promise<Values>
}

// ---------------------------------------------------------------------------------------------
// scenarios

function scenario1 (): Scenario {
  const bytes = Math.round(SIZE_MIB * MiB)
  return {
    id: 1,
    title: `one seeder → one leecher, ${SIZE_MIB} MiB, no caps; vs one raw libp2p stream`,
    metrics: [
      { key: 'rawStream', label: 'raw libp2p stream: stream open → last byte', unit: 'MiB/s', digits: 1 },
      { key: 'rawE2e', label: 'raw libp2p: dialer spawn → last byte', unit: 'MiB/s', digits: 1 },
      { key: 'bsTransfer', label: 'bitswarm: `manifest` → `complete`', unit: 'MiB/s', digits: 1 },
      { key: 'bsE2e', label: 'bitswarm: leecher spawn → `complete`', unit: 'MiB/s', digits: 1 },
      { key: 'bsStartup', label: 'bitswarm: leecher spawn → `manifest`', unit: 's', digits: 2 },
      { key: 'ratioTransfer', label: 'ratio bitswarm/raw (transfer spans)', unit: '×', digits: 2, goal: { op: '>=', value: 0.8 } },
      { key: 'ratioE2e', label: 'ratio bitswarm/raw (spawn → done)', unit: '×', digits: 2, goal: { op: '>=', value: 0.8 } },
      { key: 'rawRecvCpu', label: 'raw receiver: CPU per MiB (process start included)', unit: 'ms', digits: 1 },
      { key: 'rawSendCpu', label: 'raw sender: CPU per MiB (process start included)', unit: 'ms', digits: 1 },
      { key: 'rawFloor', label: `raw stack's CPU floor for ${SMALL_N} × ${SIZE_MIB} MiB (1 → ${SMALL_N}): ${SMALL_N}·F × (sender + receiver CPU per MiB) / ${CORES} cores`, unit: 's', digits: 2 },
      { key: 'floorWork', label: 'SHA-256 of every byte and writing it to a file (this process, 256 KiB pieces): CPU per MiB', unit: 'ms', digits: 2 },
      { key: 'leechFloor', label: 'a leecher\'s floor on this stack: (raw receiver + that) / raw receiver', unit: '×', digits: 2 },
      { key: 'bsLeechCpu', label: 'bitswarm leecher: CPU per MiB (process start included)', unit: 'ms', digits: 1 },
      { key: 'leechRatio', label: 'bitswarm leecher / raw receiver, CPU per MiB (per run)', unit: '×', digits: 2, goal: { op: '<=', value: 1.2 } },
      { key: 'bsSeedCpu', label: 'bitswarm seeder: CPU per MiB served', unit: 'ms', digits: 1 }
    ],
    notes: ['Each run measures both, alternating which goes first; the ratios are per run. CPU is user + system time of all threads (/proc/<pid>/stat); the leecher\'s includes hashing and writing the file, which the raw receiver does not do.'],
    timeoutMs: 60_000 + 2 * 1000 * SIZE_MIB / 2,
    once: async (n) => {
      const file = await dataFile(SIZE_MIB)
      const raw = async (): Promise<Values> => await withRun(60_000 + 1000 * SIZE_MIB / 2, async (run) => {
        const l = run.start('raw-listen', ['listen', LOOPBACK], RAW)
        const ma = String((await l.until(e => e.event === 'listening', run.deadline, 'listening')).e.multiaddr)
        const d = run.start('raw-send', ['send', ma, String(bytes)], RAW)
        const got = await l.until(e => e.event === 'received' || e.event === 'error', run.deadline, 'received')
        if (got.e.event === 'error' || Number(got.e.bytes) !== bytes) throw new Error(`raw receiver: ${JSON.stringify(got.e)}`)
        const rawRecvCpu = 1000 * await cpuSeconds(l.child.pid) / (bytes / MiB)
        const sent = await d.until(e => e.event === 'sent', run.deadline, 'sent')
        const rawSendCpu = Number(sent.e.cpuMs) / (bytes / MiB)
        // every byte a swarm delivers is sent by one peer and received by another: on this stack,
        // with no protocol work at all, N·F bytes cost at least this much of the machine's cores
        const rawFloor = SMALL_N * SIZE_MIB * (rawSendCpu + rawRecvCpu) / 1000 / CORES
        return { rawStream: mibps(bytes, Number(got.e.ms)), rawE2e: mibps(bytes, got.at - d.spawnedAt), rawRecvCpu, rawSendCpu, rawFloor }
      })
      const bs = async (): Promise<Values> => await withRun(60_000 + 1000 * SIZE_MIB / 2, async (run) => {
        const announce = await run.tracker()
        const { cid, proc: seeder } = await run.seeder(file, announce)
        const seederCpu0 = await cpuSeconds(seeder.child.pid)
        const l = run.leecher(0, cid, announce)
        const m = await l.until(e => e.event === 'manifest', run.deadline, 'manifest')
        const c = await l.until(e => e.event === 'complete', run.deadline, 'complete')
        const [leechCpu, seedCpu] = [await cpuSeconds(l.child.pid), await cpuSeconds(seeder.child.pid) - seederCpu0]
        if (Number(c.e.bytes) !== bytes) throw new Error(`complete with ${String(c.e.bytes)} bytes, expected ${bytes}`)
        const perMiB = (s: number): number => 1000 * s / (bytes / MiB)
        return { bsTransfer: mibps(bytes, c.at - m.at), bsE2e: mibps(bytes, c.at - l.spawnedAt), bsStartup: secs(m.at - l.spawnedAt), bsLeechCpu: perMiB(leechCpu), bsSeedCpu: perMiB(seedCpu) }
      })
      const v = n % 2 === 0 ? { ...(await raw()), ...(await bs()) } : { ...(await bs()), ...(await raw()) }
      const floorWork = hashAndWriteCpu(file, bytes)
      return {
        ...v,
        ratioTransfer: v.bsTransfer / v.rawStream,
        ratioE2e: v.bsE2e / v.rawE2e,
        floorWork,
        leechFloor: (v.rawRecvCpu + floorWork) / v.rawRecvCpu,
        leechRatio: v.bsLeechCpu / v.rawRecvCpu
      }
    }
  }
}

/** One seeder and n leechers started together (all `--seed`); times to the last `complete`. */
async function swarmOnce (run: Run, mib: number, n: number, capMiB: number | undefined): Promise<Values> {
  const file = await dataFile(mib)
  const bytes = Math.round(mib * MiB)
  const cap = capMiB == null ? [] : ['--max-upload-rate', `${capMiB}MiB`]
  const announce = await run.tracker()
  const seeder = await run.seeder(file, announce, cap)
  // the seeder's hashing of the file before it seeds is not part of the swarm's work
  const seederCpu0 = await cpuSeconds(seeder.proc.child.pid)
  const t0 = performance.now()
  const leechers = Array.from({ length: n }, (_, i) => run.leecher(i, seeder.cid, announce, ['--seed', ...cap]))
  const manifests = await Promise.all(leechers.map(async l => await l.until(e => e.event === 'manifest', run.deadline, 'manifest')))
  const completes = await Promise.all(leechers.map(async l => await l.until(e => e.event === 'complete', run.deadline, 'complete')))
  // every peer's CPU time at the last `complete`: what the machine spent to get there
  const cpu = (await Promise.all([seeder.proc, ...leechers].map(async p => await cpuSeconds(p.child.pid)))).reduce((a, b) => a + b, 0) - seederCpu0
  for (const c of completes) if (Number(c.e.bytes) !== bytes) throw new Error(`complete with ${String(c.e.bytes)} bytes, expected ${bytes}`)
  const last = Math.max(...completes.map(c => c.at))
  const first = Math.min(...completes.map(c => c.at))
  const firstManifest = Math.min(...manifests.map(m => m.at))
  const seederUp = Number(seeder.proc.last('stats')?.e.uploaded ?? NaN)
  return {
    last: secs(last - t0),
    first: secs(first - t0),
    transfer: secs(last - firstManifest),
    aggregate: mibps(n * bytes, last - t0),
    seederShare: seederUp / (n * bytes),
    cpu,
    cpuFloor: cpu / CORES,
    cpuPerMiB: 1000 * cpu / (n * bytes / MiB)
  }
}

function swarmScenario (id: number, mib: number, n: number, capMiB: number | undefined): Scenario {
  const F = mib * MiB
  const u = capMiB == null ? undefined : capMiB * MiB
  const tStar = u == null ? undefined : kumarRoss(F, u, Array.from({ length: n }, () => u))
  const clientServer = u == null ? undefined : n * F / u
  const metrics: Metric[] = [
    { key: 'last', label: 'last leecher: spawn → `complete`', unit: 's', digits: 2 },
    { key: 'first', label: 'first leecher: spawn → `complete`', unit: 's', digits: 2 },
    { key: 'transfer', label: 'first `manifest` → last `complete`', unit: 's', digits: 2 },
    { key: 'aggregate', label: `aggregate download, N·F / last time`, unit: 'MiB/s', digits: 1 },
    { key: 'seederShare', label: 'seeder upload / (N·F) (≈, last stats line; 1.0 = client-server)', unit: '×', digits: 2 },
    { key: 'cpu', label: 'CPU time of all peers, spawn → last `complete`', unit: 's', digits: 1 },
    { key: 'cpuFloor', label: `CPU floor: that CPU time / ${CORES} cores`, unit: 's', digits: 2 },
    { key: 'cpuPerMiB', label: 'CPU per MiB delivered (both ends, process start included)', unit: 'ms', digits: 1 }
  ]
  const notes: string[] = []
  if (tStar != null && clientServer != null) {
    metrics.push(
      { key: 'ratio', label: `last time / T* (T* = ${tStar.toFixed(2)} s)`, unit: '×', digits: 2, goal: { op: '<=', value: 1.2 } },
      { key: 'ratioTransfer', label: 'transfer span / T*', unit: '×', digits: 2 },
      { key: 'ratioCs', label: `last time / client-server N·F/u_s (${clientServer.toFixed(1)} s)`, unit: '×', digits: 2 },
      { key: 'ratioCpu', label: 'CPU floor / T* (above 1.2, this machine cannot meet the goal at this CPU cost)', unit: '×', digits: 2 })
    notes.push(`F = ${mib} MiB, N = ${n}, u_s = u_i = ${String(capMiB)} MiB/s, d_min = ∞: T* = max(F/u_s = ${(F / (u ?? 1)).toFixed(2)} s, N·F/(u_s+Σu_i) = ${(n * F / ((n + 1) * (u ?? 1))).toFixed(2)} s) = ${tStar.toFixed(2)} s; client-server N·F/u_s = ${clientServer.toFixed(1)} s.`)
  }
  const title = `one seeder, ${n} leechers, ${mib} MiB, ${capMiB == null ? 'no caps' : `every upload ≤ ${String(capMiB)} MiB/s`}`
  const timeoutMs = tStar == null ? 60_000 + 1000 * n * mib / 4 : 180_000 + 10 * 1000 * tStar
  return {
    id,
    title,
    metrics,
    notes,
    timeoutMs,
    once: async () => await withRun(timeoutMs, async (run) => {
      const v = await swarmOnce(run, mib, n, capMiB)
      if (tStar == null || clientServer == null) return v
      return { ...v, ratio: v.last / tStar, ratioTransfer: v.transfer / tStar, ratioCs: v.last / clientServer, ratioCpu: v.cpuFloor / tStar }
    })
  }
}

function scenario4 (): Scenario {
  const bytes = Math.round(MEM_MIB * MiB)
  const timeoutMs = 60_000 + 1000 * MEM_MIB / 2
  return {
    id: 4,
    title: `memory: one seeder → one leecher, ${MEM_MIB} MiB, no caps`,
    metrics: [
      { key: 'seeder', label: 'seeder peak RSS', unit: 'MB', digits: 0, goal: { op: '<=', value: 250 } },
      { key: 'leecher', label: 'leecher peak RSS', unit: 'MB', digits: 0, goal: { op: '<=', value: 250 } },
      { key: 'e2e', label: 'throughput, leecher spawn → `complete`', unit: 'MiB/s', digits: 1 }
    ],
    notes: ['VmRSS sampled every 200 ms; goal from bench/memory.ts (250 MB = 250·10⁶ bytes).'],
    timeoutMs,
    once: async () => {
      const file = await dataFile(MEM_MIB)
      return await withRun(timeoutMs, async (run) => {
        const announce = await run.tracker()
        const seeder = await run.seeder(file, announce)
        const leecher = run.leecher(0, seeder.cid, announce)
        const peak = { seeder: 0, leecher: 0 }
        const sampler = setInterval(() => {
          void rss(seeder.proc.child.pid).then(r => { peak.seeder = Math.max(peak.seeder, r) })
          void rss(leecher.child.pid).then(r => { peak.leecher = Math.max(peak.leecher, r) })
        }, 200)
        try {
          const c = await leecher.until(e => e.event === 'complete', run.deadline, 'complete')
          if (Number(c.e.bytes) !== bytes) throw new Error(`complete with ${String(c.e.bytes)} bytes, expected ${bytes}`)
          return { seeder: peak.seeder / 1e6, leecher: peak.leecher / 1e6, e2e: mibps(bytes, c.at - leecher.spawnedAt) }
        } finally {
          clearInterval(sampler)
        }
      })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// running and reporting

async function runScenario (s: Scenario): Promise<ScenarioReport> {
  console.log(`\n[${s.id}] ${s.title}`)
  const runs: Outcome[] = []
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now()
    let outcome: Outcome
    try {
      outcome = { run: r + 1, status: 'ok', values: await s.once(r) }
    } catch (err) {
      const e = err as Error
      outcome = { run: r + 1, status: e instanceof TimeoutError ? 'timeout' : 'failed', message: e.message, values: {} }
    }
    runs.push(outcome)
    const shown = s.metrics.filter(m => outcome.values[m.key] != null).map(m => `${m.key} ${outcome.values[m.key].toFixed(m.digits)}`).join(', ')
    console.log(`  run ${r + 1}/${RUNS} (${((performance.now() - t) / 1000).toFixed(1)} s): ${outcome.status}${outcome.message != null ? ` — ${outcome.message}` : ''}${shown !== '' ? ` — ${shown}` : ''}`)
  }
  const metrics = s.metrics.map((m): Summary => {
    const values = runs.filter(r => r.status === 'ok').map(r => r.values[m.key]).filter(v => Number.isFinite(v))
    const med = median(values)
    const met = m.goal == null || med == null ? null : m.goal.op === '>=' ? med >= m.goal.value : med <= m.goal.value
    return { ...m, values, median: med, min: values.length > 0 ? Math.min(...values) : null, max: values.length > 0 ? Math.max(...values) : null, met }
  })
  return { id: s.id, title: s.title, runs, metrics, notes: s.notes }
}

function markdown (reports: ScenarioReport[], header: Record<string, string>): string {
  const fmt = (v: number | null, d: number): string => v == null ? '—' : v.toFixed(d)
  const lines = ['# bitswarm swarm benchmark (loopback)', '']
  for (const [k, v] of Object.entries(header)) lines.push(`- ${k}: ${v}`)
  lines.push('', '| # | scenario | figure | median | min | max | unit | goal | ok runs |', '|---|---|---|---:|---:|---:|---|---|---|')
  for (const r of reports) {
    const ok = r.runs.filter(x => x.status === 'ok').length
    const bad = r.runs.filter(x => x.status !== 'ok').map(x => x.status)
    const okText = `${ok}/${r.runs.length}${bad.length > 0 ? ` (${bad.join(', ')})` : ''}`
    r.metrics.forEach((m, i) => {
      const goal = m.goal == null ? '' : `${m.goal.op === '>=' ? '≥' : '≤'} ${m.goal.value} ${m.met === true ? '✅' : m.met === false ? '❌' : ''}`
      lines.push(`| ${i === 0 ? String(r.id) : ''} | ${i === 0 ? r.title : ''} | ${m.label} | ${fmt(m.median, m.digits)} | ${fmt(m.min, m.digits)} | ${fmt(m.max, m.digits)} | ${m.unit} | ${goal} | ${okText} |`)
    })
  }
  const notes = reports.flatMap(r => [...r.notes.map(n => `- [${r.id}] ${n}`), ...r.runs.filter(x => x.status !== 'ok').map(x => `- [${r.id}] run ${x.run}: ${x.status}: ${x.message ?? ''}`)])
  if (notes.length > 0) lines.push('', ...notes)
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const started = performance.now()
  await openBaseDir('bitswarm-swarm-bench-')
  const all: Scenario[] = [
    scenario1(),
    swarmScenario(2, SIZE_MIB, SMALL_N, undefined),
    swarmScenario(3, SIZE_MIB, SMALL_N, CAP_MIB),
    scenario4(),
    swarmScenario(5, LARGE_MIB, LARGE_N, LARGE_CAP_MIB)
  ]
  const reports: ScenarioReport[] = []
  try {
    for (const s of all) if (SCENARIOS.has(s.id)) reports.push(await runScenario(s))
  } finally {
    await closeBaseDir()
  }
  const header = resultsHeader(started, {
    runs: `${RUNS} per figure (median, min, max over the runs that finished)`
  })
  const md = markdown(reports, header)
  await mkdir(RESULTS, { recursive: true })
  await writeFile(join(RESULTS, 'latest.md'), md)
  await writeFile(join(RESULTS, 'latest.json'), JSON.stringify({
    ...header,
    cores: CORES,
    config: { RUNS, SIZE_MIB, MEM_MIB, LARGE_MIB, LARGE_N, CAP_MIB, LARGE_CAP_MIB, scenarios: [...SCENARIOS] },
    scenarios: reports
  }, null, 2) + '\n')
  console.log('\n' + md)
}

await main()
