/**
 * Benchmark: throughput between homes behind NATs, on the namespaced "internet" of
 * test/netns/harness.ts (Linux network namespaces, iptables NAT routers; needs root, `ip`,
 * `iptables`, and `tc` when shaping). Real processes only: `bitswarm tracker`, `bitswarm seed` and
 * `bitswarm get`, all `--no-dht --json`, each in its host's namespace, with fresh tracker and state
 * directories every run. RUNS runs (default 3) of each scenario, the scenarios taking turns within
 * a run (1, 2, 3, then 1, 2, 3 again…) so that a slow spell of the machine is shared between them;
 * each figure is the median with min–max. Results: bench/results/nat.md and bench/results/nat.json.
 *
 *   internet 10.200.0.0/24: tracker, router-a, router-b
 *   home a 192.168.1.0/24: a1 (the seeder), a2        home b 192.168.2.0/24: b1
 *
 * One file of SIZE_MIB (default 64) MiB of random bytes, seeded from a1. Scenarios
 * (SCENARIOS="2,3" selects some):
 *  1. one LAN: the leecher is a2, in the seeder's home; the tracker is on the internet. The
 *     tracker lists only addresses on the IP an announce came from (tracker/addresses.ts), so it
 *     gives neither of two peers behind one NAT the other's LAN address, and the router does no
 *     hairpin NAT: the leecher is also given the seeder's LAN address (`--bootstrap`), as a LAN
 *     discovery would (there is none with `--no-dht`);
 *  2. direct: the seeder listens on tcp/4002, forwarded on router a, and announces router a's
 *     internet address (`--announce`); the leecher is b1, in home b;
 *  3. relayed: the tracker runs a relay beside it (`tracker --relay --relay-port 4100`); the seeder
 *     (on tcp/4003, not forwarded) holds a reservation on it (`--relay`); the leecher is b1. Every
 *     `peer` event of the leecher must say `"via":"relayed"`.
 * Scenarios 1 and 2 require `"via":"direct"`. The leecher is spawned once the seeder has hashed the
 * file, its tracker announce has gone through (`stats`: tracker ok) and, in 3, its reservation is
 * up (`stats`: reachability relayed). Time: the leecher's spawn → its `complete` event, as we read
 * it; MiB/s = SIZE_MIB / that time. Also the spawn → its first `peer` event (finding and reaching
 * the seeder). The downloaded file's SHA-256 is checked after the timing; a mismatch fails the run.
 *
 * SHAPE_MBIT (default unset: no shaping) caps what each home's router sends to the internet at
 * that many Mbit/s (tc tbf on its WAN leg), like a home uplink. The seeder's data leaves home a
 * through it in scenarios 2 and 3; scenario 1 never crosses it. The relay's own link is not shaped.
 *
 * Ctrl-C, SIGTERM, a failure or the end stop every process and remove every namespace (the
 * harness) and the temporary directory (bench/procs.ts).
 */
import '../src/polyfill.js'
import { createHash } from 'node:crypto'
import { createReadStream, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pipeline } from 'node:stream/promises'
import { createTopology, unavailable, type HostProc, type JsonEvent, type Topology } from '../test/netns/harness.js'
import { CLI, closeBaseDir, CORES, dataFile, envNumber, median, MiB, openBaseDir, RESULTS, resultsHeader, secs } from './procs.js'

const RUNS = Math.round(envNumber('RUNS', 3))
const SIZE_MIB = envNumber('SIZE_MIB', 64)
const SHAPE_MBIT = process.env.SHAPE_MBIT == null || process.env.SHAPE_MBIT === '' ? undefined : envNumber('SHAPE_MBIT', 1)
const SCENARIOS = new Set((process.env.SCENARIOS ?? '1,2,3').split(',').map(s => Number(s.trim())).filter(n => n >= 1 && n <= 3))

const BYTES = Math.round(SIZE_MIB * MiB)
const TRACKER_PORT = 8000
const RELAY_PORT = 4100
const SEEDER = 'a1'
const STATS_INTERVAL = '0.2'
/** a tbf bucket of 10 ms at the rate (32 kbit at least, the harness's default) */
const SHAPE = SHAPE_MBIT == null ? undefined : { mbit: SHAPE_MBIT, rate: `${SHAPE_MBIT}mbit`, burst: `${Math.max(32, Math.round(SHAPE_MBIT * 10))}kbit` }
/** spawn → complete, at worst: 5 MiB/s, or a fifth of the shaped rate */
const DOWNLOAD_TIMEOUT_MS = 60_000 + Math.round(SIZE_MIB / Math.min(5, SHAPE_MBIT == null ? Infinity : SHAPE_MBIT / 8 / 5) * 1000)
const SETUP_TIMEOUT_MS = 30_000

interface Scenario {
  id: number
  key: 'lan' | 'direct' | 'relayed'
  title: string
  leecher: string
  port: number
  via: 'direct' | 'relayed'
}

const ALL: Scenario[] = [
  { id: 1, key: 'lan', title: 'one LAN: a1 → a2 (home a), tracker on the internet', leecher: 'a2', port: 4001, via: 'direct' },
  { id: 2, key: 'direct', title: 'direct: a1 (home a, port forwarded, `--announce` router a) → b1 (home b)', leecher: 'b1', port: 4002, via: 'direct' },
  { id: 3, key: 'relayed', title: 'relayed: a1 (home a, `--relay`) → the tracker\'s relay → b1 (home b)', leecher: 'b1', port: 4003, via: 'relayed' }
]

// ---------------------------------------------------------------------------------------------
// one run of one scenario

interface Values { seconds: number, mibps: number, toPeer: number, seedReady: number }

interface Outcome { run: number, status: 'ok' | 'failed', message?: string, values?: Values, via?: string[] }

async function sha256File (path: string): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(path), h)
  return h.digest('hex')
}

/** The first line of an error (the harness appends the process's command and output tails). */
const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]

async function once (t: Topology, s: Scenario, base: string, file: string, want: string): Promise<{ values: Values, via: string[] }> {
  const dir = await mkdtemp(join(base, `run-${s.key}-`))
  /** `bitswarm …` in a host's namespace, its peer cache in the run's directory */
  const cli = (host: string, name: string, args: string[]): HostProc => t.spawn(host, [process.execPath, CLI, ...args], {
    name: `${name}@${host}`,
    cwd: dir,
    env: { ...process.env, BITSWARM_STATE_DIR: join(dir, `state-${name}`) }
  })
  try {
    const trackerIp = t.addressOf('tracker')
    const tracker = cli('tracker', 'tracker', ['tracker', '--host', trackerIp, '--port', String(TRACKER_PORT),
      ...(s.key === 'relayed' ? ['--relay', '--relay-port', String(RELAY_PORT)] : []), '--json'])
    const listening = await tracker.wait('listening', SETUP_TIMEOUT_MS)
    const announce = String(listening.announce)
    const extra: string[] = []
    if (s.key === 'direct') extra.push('--announce', `/ip4/${t.publicAddressOf('a')}/tcp/${s.port}`)
    if (s.key === 'relayed') {
      const relay = Array.isArray(listening.relay) ? String(listening.relay[0]) : ''
      if (!relay.startsWith(`/ip4/${trackerIp}/tcp/${RELAY_PORT}/p2p/`)) throw new Error(`tracker --relay: unexpected relay address ${JSON.stringify(listening.relay)}`)
      extra.push('--relay', relay)
    }

    const seedT0 = performance.now()
    const seeder = cli(SEEDER, 'seeder', ['seed', file, '--manifest', join(dir, 'file.bitswarm'), '--tracker', announce,
      '--listen', `/ip4/0.0.0.0/tcp/${s.port}`, '--no-dht', '--stats-interval', STATS_INTERVAL, '--json', ...extra])
    const cid = String((await seeder.wait('seeding', SETUP_TIMEOUT_MS)).cid)
    // in the swarm (the tracker has it) and, through the relay, reachable: only then the leecher
    await seeder.wait('stats', SETUP_TIMEOUT_MS, e => e.tracker === 'ok' && (s.key !== 'relayed' || e.reachability === 'relayed'))
    const seedReady = performance.now() - seedT0

    // the tracker lists only addresses on the IP an announce came from (tracker/addresses.ts):
    // for two peers behind one NAT, that is none of the other's; on one LAN the leecher is told
    // the seeder's LAN address, as a LAN discovery would
    const bootstrap = s.key === 'lan' ? ['--bootstrap', `/ip4/${t.addressOf(SEEDER)}/tcp/${s.port}/p2p/${String(seeder.last('seeding')?.peerId)}`] : []
    const t0 = performance.now()
    const leecher = cli(s.leecher, 'leecher', ['get', cid, '--out', join(dir, 'out'), '--tracker', announce, ...bootstrap,
      '--listen', '/ip4/0.0.0.0/tcp/0', '--no-dht', '--json', '--timeout', '30s'])
    const stamp = async (event: string): Promise<{ e: JsonEvent, at: number }> => {
      const e = await leecher.wait(event, DOWNLOAD_TIMEOUT_MS)
      return { e, at: performance.now() }
    }
    const [peer, complete] = await Promise.all([stamp('peer'), stamp('complete')])
    const exit = await leecher.waitExit(15_000)
    if (exit.code !== 0) throw new Error(`the leecher exited ${String(exit.code ?? exit.signal)} after \`complete\``)

    // checked after the timing
    const via = leecher.events.filter(e => e.event === 'peer').map(e => String(e.via))
    if (via.some(v => v !== s.via)) throw new Error(`the leecher's peer events say via ${via.join(', ')}, expected ${s.via}`)
    const seederId = seeder.last('seeding')?.peerId
    if (peer.e.peerId !== seederId) throw new Error(`the leecher's first peer is ${String(peer.e.peerId)}, not the seeder ${String(seederId)}`)
    if (Number(complete.e.bytes) !== BYTES) throw new Error(`complete with ${String(complete.e.bytes)} bytes, expected ${BYTES}`)
    const got = await sha256File(String(complete.e.path))
    if (got !== want) throw new Error(`${String(complete.e.path)}: SHA-256 ${got}, expected ${want}`)

    const ms = complete.at - t0
    return { values: { seconds: secs(ms), mibps: SIZE_MIB / secs(ms), toPeer: secs(peer.at - t0), seedReady: secs(seedReady) }, via }
  } finally {
    await t.stopAll()
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// reporting

interface Summary { median: number | null, min: number | null, max: number | null }

interface Report { id: number, key: string, title: string, runs: Outcome[], figures: Record<keyof Values, Summary> }

const FIGURES: Array<{ key: keyof Values, label: string, unit: string, digits: number }> = [
  { key: 'seconds', label: 'leecher: spawn → `complete`', unit: 's', digits: 2 },
  { key: 'mibps', label: 'throughput (file / that time)', unit: 'MiB/s', digits: 1 },
  { key: 'toPeer', label: 'leecher: spawn → first `peer`', unit: 's', digits: 2 },
  { key: 'seedReady', label: 'seeder: spawn → ready (hashed, announced, relay reserved)', unit: 's', digits: 2 }
]

const fmt = (v: number | null | undefined, d: number): string => v == null || !Number.isFinite(v) ? '—' : v.toFixed(d)
const spread = (f: Summary, d: number): string => f.median == null ? '—' : `${fmt(f.median, d)} (${fmt(f.min, d)}–${fmt(f.max, d)})`
const range = (f: Summary, d: number): string => f.median == null ? '—' : `${fmt(f.min, d)}–${fmt(f.max, d)}`

function summarize (s: Scenario, runs: Outcome[]): Report {
  const figures = Object.fromEntries(FIGURES.map(f => {
    const vs = runs.flatMap(r => r.status === 'ok' && r.values != null ? [r.values[f.key]] : []).filter(v => Number.isFinite(v))
    return [f.key, { median: median(vs), min: vs.length > 0 ? Math.min(...vs) : null, max: vs.length > 0 ? Math.max(...vs) : null }]
  })) as Record<keyof Values, Summary>
  return { id: s.id, key: s.key, title: s.title, runs, figures }
}

/** relayed ÷ direct, on the median times (the same as direct ÷ relayed on the median MiB/s) */
function relayCost (reports: Report[]): number | null {
  const d = reports.find(r => r.key === 'direct')?.figures.seconds.median
  const r = reports.find(r => r.key === 'relayed')?.figures.seconds.median
  return d == null || r == null ? null : r / d
}

const shapingText = SHAPE == null
  ? 'none (SHAPE_MBIT unset): the veths run as fast as the CPU lets them'
  : `each router's WAN leg capped at ${SHAPE.mbit} Mbit/s (${fmt(SHAPE.mbit / 8 / 1.048576, 2)} MiB/s) with tc tbf (burst ${SHAPE.burst}, latency 400ms), what a home sends to the internet: the seeder's upload in scenarios 2 and 3 (scenario 1 stays on the LAN and never crosses it; the relay's own link is not shaped)`

function markdown (reports: Report[], header: Record<string, string>): string {
  const lines = ['# bitswarm NAT benchmark (homes behind NATs on a namespaced internet)', '']
  for (const [k, v] of Object.entries(header)) lines.push(`- ${k}: ${v}`)
  lines.push('', `## Results (${SIZE_MIB} MiB, one seeder, one leecher)`, '',
    '| # | scenario | spawn → complete, median | MiB/s, median | min–max (s) | min–max (MiB/s) | runs ok |',
    '|---|---|---:|---:|---:|---:|---:|')
  for (const r of reports) {
    const ok = r.runs.filter(o => o.status === 'ok').length
    lines.push(`| ${r.id} | ${r.title} | ${fmt(r.figures.seconds.median, 2)} s | ${fmt(r.figures.mibps.median, 1)} | ${range(r.figures.seconds, 2)} | ${range(r.figures.mibps, 1)} | ${ok}/${r.runs.length} |`)
  }
  const cost = relayCost(reports)
  if (cost != null) lines.push('', `The relay's cost: relayed ÷ direct = **${fmt(cost, 2)}×** the time (median times), i.e. ${fmt(100 / cost, 0)} % of the direct throughput.`)
  for (const r of reports) {
    lines.push('', `## ${r.id}. ${r.title}`, '',
      `| figure | ${r.runs.map(o => `run ${o.run}`).join(' | ')} | median (min–max) | unit |`,
      `|---|${r.runs.map(() => '---:|').join('')}---:|---|`)
    for (const f of FIGURES) {
      const cells = r.runs.map(o => o.status !== 'ok' || o.values == null ? o.status : fmt(o.values[f.key], f.digits))
      lines.push(`| ${f.label} | ${cells.join(' | ')} | ${spread(r.figures[f.key], f.digits)} | ${f.unit} |`)
    }
    lines.push(`| leecher's \`peer\` events, via | ${r.runs.map(o => o.via?.join(', ') ?? '—').join(' | ')} |  |  |`)
    const notes = r.runs.filter(o => o.status !== 'ok').map(o => `run ${o.run}: ${o.status}: ${o.message ?? ''}`)
    if (notes.length > 0) lines.push('', ...notes.map(n => `- ${n.replace(/\|/g, '\\|')}`))
  }
  lines.push('', '## Method', '',
    '- Topology (test/netns/harness.ts): an internet segment 10.200.0.0/24 (a bridge in its own namespace) with the tracker and the WAN legs of two home routers; home a 192.168.1.0/24 (a1, a2) and home b 192.168.2.0/24 (b1) behind them. The routers masquerade, let replies in and drop everything unsolicited from the internet; router a forwards tcp/4002 to a1:4002 (scenario 2). Every link is a veth: no latency or loss is added.',
    `- Shaping: ${shapingText}.`,
    '- Scenario 1: the tracker lists only addresses on the IP an announce came from (tracker/addresses.ts), so two peers behind one NAT get none of each other\'s from it, and the router does no hairpin NAT; with `--no-dht` there is no LAN discovery either. The leecher is therefore given the seeder\'s LAN address with `--bootstrap` (the tracker is still passed; its answer holds nothing dialable).',
    `- Each run: a fresh tracker (\`--relay\` in scenario 3), a seeder on a1 (\`--listen /ip4/0.0.0.0/tcp/<port>\`, \`--no-dht\`, its own state directory) and, once it has hashed the file, announced and (3) reserved a relay slot, the leecher (\`get --no-dht --listen /ip4/0.0.0.0/tcp/0\`). Everything is stopped and removed after each run. Runs take turns between the scenarios.`,
    `- Time: the leecher's spawn (\`ip netns exec … node dist/bitswarm.mjs get …\`, so Node's start is included) → its \`complete\` event, as read from its stdout. MiB = 2²⁰ bytes. The file is one ${SIZE_MIB} MiB file of random bytes, written once; the page cache holds it (nothing is dropped).`,
    '- Checks, after the timing: the leecher exits 0, `complete` has the file\'s size, the download\'s SHA-256 is the source\'s, and the leecher\'s `peer` events say `via` direct (1, 2) or relayed (3). A failed check fails the run; medians are over the runs that passed.',
    `- The machine has ${CORES} cores, shared by the seeder, the leecher, the tracker and its relay (and by whatever else runs): unshaped, the figures are bounded by CPU (noise, yamux, hashing), not by the veths.`)
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const why = unavailable()
  if (why !== undefined) {
    console.error(`bench:nat needs network namespaces: ${why}`)
    process.exitCode = 1
    return
  }
  const started = performance.now()
  const base = await openBaseDir('bitswarm-nat-bench-')
  // Ctrl-C is bench/procs.ts's (it removes the directory and exits, and the harness's exit
  // handler removes the namespaces); SIGTERM and SIGHUP the same way
  for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(signal, () => { rmSync(base, { recursive: true, force: true }); process.exit(code) })
  }
  const scenarios = ALL.filter(s => SCENARIOS.has(s.id))
  const outcomes = new Map<number, Outcome[]>(scenarios.map(s => [s.id, []]))
  let t: Topology | undefined
  try {
    const t0 = performance.now()
    const file = await dataFile(SIZE_MIB)
    const want = await sha256File(file)
    t = await createTopology({ homes: ['a', 'b'], hosts: { tracker: 'internet', a1: 'a', a2: 'a', b1: 'b' } })
    await t.forwardPort('a', 'tcp', ALL[1].port, SEEDER, ALL[1].port)
    if (SHAPE != null) {
      for (const home of ['a', 'b']) await t.shape(t.routerOf(home), SHAPE.rate, { burst: SHAPE.burst })
    }
    console.log(`nat: ${SIZE_MIB} MiB file and topology ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; shaping: ${SHAPE == null ? 'none' : `${SHAPE_MBIT} Mbit/s per router uplink`}; ${RUNS} runs`)
    for (let r = 0; r < RUNS; r++) {
      for (const s of scenarios) {
        const t1 = performance.now()
        let o: Outcome
        try {
          const { values, via } = await once(t, s, base, file, want)
          o = { run: r + 1, status: 'ok', values, via }
        } catch (err) {
          o = { run: r + 1, status: 'failed', message: firstLine(err) }
          console.error(err instanceof Error ? err.message : String(err))
        }
        outcomes.get(s.id)?.push(o)
        const shown = o.values == null ? '' : ` — ${fmt(o.values.seconds, 2)} s, ${fmt(o.values.mibps, 1)} MiB/s, first peer ${fmt(o.values.toPeer, 2)} s, via ${o.via?.join(',') ?? ''}`
        console.log(`  run ${r + 1}/${RUNS} [${s.id}] ${s.key} (${((performance.now() - t1) / 1000).toFixed(1)} s): ${o.status}${o.message != null ? ` — ${o.message}` : ''}${shown}`)
      }
    }
  } finally {
    await t?.destroy()
    await closeBaseDir()
  }

  const reports = scenarios.map(s => summarize(s, outcomes.get(s.id) ?? []))
  const header = resultsHeader(started, {
    runs: `${RUNS} per scenario, taking turns (median, min–max over the runs that passed)`,
    file: `${SIZE_MIB} MiB of random bytes`,
    shaping: SHAPE == null ? 'none (SHAPE_MBIT unset)' : `${SHAPE_MBIT} Mbit/s on each router's internet leg (tc tbf)`
  })
  const md = markdown(reports, header)
  await mkdir(RESULTS, { recursive: true })
  await writeFile(join(RESULTS, 'nat.md'), md)
  await writeFile(join(RESULTS, 'nat.json'), JSON.stringify({
    ...header,
    cores: CORES,
    config: { RUNS, SIZE_MIB, SHAPE_MBIT: SHAPE_MBIT ?? null, shape: SHAPE ?? null, scenarios: [...SCENARIOS], trackerPort: TRACKER_PORT, relayPort: RELAY_PORT },
    relayCost: relayCost(reports),
    scenarios: reports
  }, (_, v: unknown) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2) + '\n')
  console.log('\nsummary:')
  for (const r of reports) {
    const ok = r.runs.filter(o => o.status === 'ok').length
    console.log(`  [${r.id}] ${r.key}: ${ok}/${r.runs.length} runs ok — ${spread(r.figures.seconds, 2)} s, ${spread(r.figures.mibps, 1)} MiB/s`)
  }
  const cost = relayCost(reports)
  if (cost != null) console.log(`  relay's cost (relayed ÷ direct, median times): ${fmt(cost, 2)}×`)
  console.log(`results: ${join(RESULTS, 'nat.md')}, nat.json`)
  if (reports.some(r => r.runs.some(o => o.status !== 'ok'))) process.exitCode = 1
}

await main()
