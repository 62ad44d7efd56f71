/**
 * Load test of the tracker on loopback: how many signed announces per second does it take, and
 * at what latency, on each store? Scenarios (STORES=memory,redis,redis2 picks):
 *   memory: one instance, the in-memory store. Goal: at least 2,000 announces/s.
 *   redis:  one instance on Redis (a redis-server this benchmark starts on a free loopback port).
 *   redis2: two instances on that one Redis, the load split between them. Goal: at least 1.5×
 *           the one instance's rate, p99 under 50 ms.
 * Results: bench/results/tracker.md and tracker.json.
 *
 * Each tracker is a child process (`bitswarm tracker --port 0 --json`), so the load generator
 * (autocannon, in this process) does not share its event loop. Every announce carries a freshly
 * signed peer record (the tracker refuses a replayed one), so all records are signed up front:
 * PEERS peers over MANIFESTS swarms, round after round, each round with a higher seq.
 *
 * Phases, each at most DURATION seconds:
 *   1. "rate": RATE announces/s, latency corrected for coordinated omission;
 *   2. "max":  as fast as CONNECTIONS connections go (skipped with MAX=0).
 * Also measured in-process: the cost of opening and verifying one record.
 *
 *   npm run build && node dist/bench/tracker-load.js
 *   env: PEERS=2000 MANIFESTS=20 RATE=2000 DURATION=10 CONNECTIONS=50 MAX=1 STORES=memory,redis,redis2
 *        TRACKER=<announce url> to load a tracker started elsewhere (e.g. under --cpu-prof)
 *
 * Every peer announces from 127.0.0.1, so the tracker's per-IP limits apply to the whole load:
 * its defaults (5000 peer entries, 128 connections per IP) hold PEERS and CONNECTIONS up to those.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { nextRecordSeq, signPeerRecord } from '../src/discovery/tracker-client.js'
import { openPeerRecord } from '../tracker/record.js'
import { hasRedisServer, startRedisServer, type RedisServer } from '../test/helpers/redis-server.js'
import { CORES, RESULTS, resultsHeader } from './procs.js'

const CLI = fileURLToPath(new URL('../bitswarm.mjs', import.meta.url))
const PEERS = intEnv('PEERS', 2000)
const MANIFESTS = intEnv('MANIFESTS', 20)
const RATE = intEnv('RATE', 2000)
const DURATION = intEnv('DURATION', 10)
const CONNECTIONS = intEnv('CONNECTIONS', 50)
const MAX = intEnv('MAX', 1) !== 0
/** records signed for the "max" phase, per second of it: above what one core can verify */
const MAX_PHASE_RATE = intEnv('MAX_RATE', 4000)
const GOAL = 2000
const EXTERNAL = process.env.TRACKER

function intEnv (name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${text}`)
  return n
}

/** A tracker started elsewhere: nothing to spawn or stop. */
class ExternalTracker {
  readonly child = undefined
  constructor (readonly url: string) {}
  async announceUrl (): Promise<string> { return this.url }
  rssMiB (): number | undefined { return undefined }
  cpuSeconds (): Cpu | undefined { return undefined }
  async stop (): Promise<void> {}
}

interface Cpu { total: number, loop: number }

interface Peer { key: PrivateKey, id: string, manifest: string, addr: string, left: number }

class Tracker {
  readonly child: ChildProcess
  private readonly stderr: string[] = []

  constructor (extra: string[] = []) {
    this.child = spawn(process.execPath, [CLI, 'tracker', '--port', '0', '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (l) => {
      this.stderr.push(l)
      if (this.stderr.length > 20) this.stderr.shift()
    })
  }

  async announceUrl (timeoutMs = 20_000): Promise<string> {
    return await new Promise((resolve, reject) => {
      const fail = (why: string): void => { reject(new Error(`tracker did not start: ${why}\n${this.stderr.join('\n')}`)) }
      const t = setTimeout(() => { fail('timed out') }, timeoutMs)
      this.child.once('exit', (code) => { clearTimeout(t); fail(`exited with ${String(code)}`) })
      createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        try {
          const e = JSON.parse(line) as { event?: string, announce?: string }
          if (e.event === 'listening' && typeof e.announce === 'string') { clearTimeout(t); resolve(e.announce) }
        } catch { /* not an event line */ }
      })
    })
  }

  /**
   * CPU seconds used so far (Linux: utime + stime from /proc, in ticks of 1/100 s): by the whole
   * process, and by its main thread, the event loop (signature checks run in other threads)
   */
  cpuSeconds (): Cpu | undefined {
    const pid = this.child.pid ?? 0
    const total = statCpuSeconds(`/proc/${pid}/stat`)
    const loop = statCpuSeconds(`/proc/${pid}/task/${pid}/stat`)
    return total === undefined || loop === undefined ? undefined : { total, loop }
  }

  /** resident memory in MiB (Linux), for a feel of what PEERS peers cost */
  rssMiB (): number | undefined {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid ?? 0}/status`, 'utf8'))
      return m == null ? undefined : Number(m[1]) / 1024
    } catch {
      return undefined
    }
  }

  async stop (): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    const exited = new Promise(resolve => this.child.once('exit', resolve))
    this.child.kill('SIGINT')
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(t)
  }
}

async function makePeers (): Promise<Peer[]> {
  const manifests = await Promise.all(Array.from({ length: MANIFESTS }, async (_, i) =>
    CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(`load-${i}`))).toString()))
  return await Promise.all(Array.from({ length: PEERS }, async (_, i) => {
    const key = await generateKeyPair('Ed25519')
    return {
      key,
      id: peerIdFromPrivateKey(key).toString(),
      manifest: manifests[i % MANIFESTS],
      // the tracker lists only addresses on the announcer's own IP: one port per peer on 127.0.0.1
      addr: `/ip4/127.0.0.1/tcp/${1024 + (i % 64_000)}`,
      left: i % 4 === 0 ? 0 : 1_000_000 // a quarter are seeders
    }
  }))
}

/** `rounds` announces per peer, round by round: one peer's seqs grow with the index. */
async function signAnnounces (peers: Peer[], rounds: number, firstRound: number): Promise<string[]> {
  const paths: string[] = []
  for (let r = 0; r < rounds; r++) {
    for (const p of peers) {
      const record = await signPeerRecord(p.key, [p.addr], nextRecordSeq())
      const q = new URLSearchParams({ manifest: p.manifest, peer: p.id, record: Buffer.from(record).toString('base64url'), uploaded: '0', downloaded: '0', left: String(p.left) })
      if (firstRound + r === 0) q.set('event', 'started')
      paths.push(`/announce?${q.toString()}`)
    }
  }
  return paths
}

interface Figures {
  /** µs of CPU per announce sent, outside the trackers: redis-server, this load generator; and the machine's busy share over the phase */
  others?: { redisUs?: number, loadUs: number, machineBusy: number }
  phase: string, seconds: number, sent: number, ok: number, perSecond: number, p50: number, p99: number, max: number, errors: number, timeouts: number, non2xx: number, codes: string, failures: string[], trackerCpu?: Cpu }

async function run (phase: string, url: string, paths: string[], options: { overallRate?: number, amount?: number, connections: number }, cpuSeconds: () => Cpu | undefined): Promise<Figures> {
  const cpu0 = cpuSeconds()
  let next = 0
  const failures = new Map<string, number>()
  const instance = autocannon({
    url,
    duration: DURATION,
    timeout: 10,
    ...options,
    requests: [{
      method: 'GET',
      // past the end we would replay records (the tracker answers 400): counted as non-2xx
      setupRequest: (req) => ({ ...req, path: paths[next++ % paths.length] }),
      // why a request failed, by reason (a JSON error from the tracker, or the status)
      onResponse: (status, body) => {
        if (status < 300) return
        let reason = `HTTP ${status}`
        try { reason += `: ${String((JSON.parse(body) as { error?: unknown }).error)}` } catch { /* not JSON */ }
        if (failures.size < 20 || failures.has(reason)) failures.set(reason, (failures.get(reason) ?? 0) + 1)
      }
    }]
  })
  // `amount` outranks `duration` in autocannon: cap the time ourselves
  const cap = setTimeout(() => { instance.stop() }, DURATION * 1000 + 500)
  const r = await instance
  clearTimeout(cap)
  const cpu1 = cpuSeconds()
  const codes = Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => `${code}×${s.count}`).join(' ')
  return {
    phase,
    seconds: r.duration,
    sent: r.requests.total,
    ok: r['2xx'],
    perSecond: r['2xx'] / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    codes,
    failures: [...failures].map(([reason, n]) => `${n}× ${reason.slice(0, 120)}`),
    // µs per announce
    trackerCpu: cpu0 === undefined || cpu1 === undefined || r.requests.total === 0
      ? undefined
      : { total: (cpu1.total - cpu0.total) * 1e6 / r.requests.total, loop: (cpu1.loop - cpu0.loop) * 1e6 / r.requests.total }
  }
}

/**
 * One phase against several instances at once: each gets its share of the rate, the connections
 * and the records (a peer's records always go to the same instance when PEERS is a multiple of the
 * instances). Rates add up; latencies are the worst instance's (autocannon gives percentiles,
 * not histograms, so a p99 over all is not to be had: the worst is the honest bound).
 */
async function runAll (phase: string, trackers: Array<{ base: string, tracker: Tracker | ExternalTracker }>, paths: string[], options: { overallRate?: number, amount?: boolean, connections: number }, redisPid?: number): Promise<Figures> {
  const redis0 = redisPid === undefined ? undefined : procCpuSeconds(redisPid)
  const load0 = process.cpuUsage()
  const machine0 = machineCpu()
  const f = await runParts(phase, trackers, paths, options)
  const redis1 = redisPid === undefined ? undefined : procCpuSeconds(redisPid)
  const load = process.cpuUsage(load0)
  const machine1 = machineCpu()
  const per = (seconds: number): number => seconds * 1e6 / Math.max(1, f.sent)
  f.others = {
    redisUs: redis0 === undefined || redis1 === undefined ? undefined : per(redis1 - redis0),
    loadUs: per((load.user + load.system) / 1e6),
    machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)
  }
  return f
}

/** utime + stime of a process, in seconds (Linux /proc; ticks of 1/100 s) */
function procCpuSeconds (pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/stat`)
}

/** utime + stime from a /proc stat file (a process's, or one thread's), in seconds */
function statCpuSeconds (path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8')
    // the fields after the command name (which may hold spaces): utime and stime are the 12th and 13th
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** jiffies of all cores: busy (not idle nor iowait) and in all, from /proc/stat */
function machineCpu (): { busy: number, total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    const total = v.reduce((a, b) => a + b, 0)
    return { busy: total - v[3] - v[4], total }
  } catch {
    return { busy: 0, total: 0 }
  }
}

async function runParts (phase: string, trackers: Array<{ base: string, tracker: Tracker | ExternalTracker }>, paths: string[], options: { overallRate?: number, amount?: boolean, connections: number }): Promise<Figures> {
  const n = trackers.length
  const parts = await Promise.all(trackers.map(async ({ base, tracker }, k) => {
    const mine = paths.filter((_, i) => i % n === k)
    return await run(phase, base, mine, {
      connections: Math.max(1, Math.round(options.connections / n)),
      ...(options.overallRate !== undefined ? { overallRate: options.overallRate / n } : {}),
      ...(options.amount === true ? { amount: mine.length } : {})
    }, () => tracker.cpuSeconds())
  }))
  if (parts.length === 1) return parts[0]
  const sum = (f: (x: Figures) => number): number => parts.reduce((acc, x) => acc + f(x), 0)
  const seconds = Math.max(...parts.map(x => x.seconds))
  const cpus = parts.map(x => x.trackerCpu)
  const sent = sum(x => x.sent)
  return {
    phase,
    seconds,
    sent,
    ok: sum(x => x.ok),
    perSecond: sum(x => x.perSecond),
    p50: Math.max(...parts.map(x => x.p50)),
    p99: Math.max(...parts.map(x => x.p99)),
    max: Math.max(...parts.map(x => x.max)),
    errors: sum(x => x.errors),
    timeouts: sum(x => x.timeouts),
    non2xx: sum(x => x.non2xx),
    codes: parts.map(x => x.codes).filter(c => c !== '').join(' | '),
    failures: parts.flatMap(x => x.failures),
    // per announce, over all instances together
    trackerCpu: cpus.some(c => c === undefined) || sent === 0
      ? undefined
      : {
          total: parts.reduce((acc, x) => acc + (x.trackerCpu?.total ?? 0) * x.sent, 0) / sent,
          loop: parts.reduce((acc, x) => acc + (x.trackerCpu?.loop ?? 0) * x.sent, 0) / sent
        }
  }
}

/**
 * In-process, the cost of one record: the signature check alone (libp2p's synchronous verify: the
 * CPU it needs somewhere), and the event-loop time of the tracker's openPeerRecord, which sends
 * Ed25519 checks to the thread pool.
 */
async function verifyCost (peers: Peer[]): Promise<{ cpuUs: number, loopUs: number }> {
  const samples = await Promise.all(peers.slice(0, 200).map(async p => {
    const record = await signPeerRecord(p.key, [p.addr], nextRecordSeq())
    return { id: peerIdFromString(p.id), record, envelope: RecordEnvelope.createFromProtobuf(record) }
  }))
  const rounds = 10
  for (const s of samples) await s.envelope.validate(PeerRecord.DOMAIN) // warm up
  let t0 = performance.now()
  for (let i = 0; i < rounds; i++) for (const s of samples) await s.envelope.validate(PeerRecord.DOMAIN)
  const cpuUs = (performance.now() - t0) * 1000 / (rounds * samples.length)
  await Promise.all(samples.map(async s => await openPeerRecord(s.record, s.id)))
  const elu0 = performance.eventLoopUtilization()
  t0 = performance.now()
  for (let i = 0; i < rounds; i++) await Promise.all(samples.map(async s => await openPeerRecord(s.record, s.id)))
  const loopUs = performance.eventLoopUtilization(elu0).active * 1000 / (rounds * samples.length)
  return { cpuUs, loopUs }
}

function show (f: Figures): void {
  console.log(`  ${f.phase.padEnd(4)} ${f.seconds.toFixed(1)} s: ${f.sent} sent, ${f.ok} ok = ${Math.round(f.perSecond)} announces/s; ` +
    `latency p50 ${f.p50} ms, p99 ${f.p99} ms, max ${f.max} ms; errors ${f.errors} (timeouts ${f.timeouts}), non-2xx ${f.non2xx}` +
    (f.codes !== '' ? ` [${f.codes}]` : ''))
  const cpu = f.trackerCpu
  if (cpu !== undefined) {
    console.log(`       tracker CPU per announce: ${cpu.total.toFixed(0)} µs in all (=> ~${Math.round(1e6 / cpu.total)}/s per core), ` +
      `of which ${cpu.loop.toFixed(0)} µs on the event loop (=> one loop tops out at ~${Math.round(1e6 / cpu.loop)}/s)`)
  }
  const o = f.others
  if (o !== undefined) {
    console.log(`       elsewhere per announce: ${o.redisUs === undefined ? '' : `redis-server ${o.redisUs.toFixed(0)} µs, `}load generator ${o.loadUs.toFixed(0)} µs; ` +
      `the machine's ${CORES} cores ${(100 * o.machineBusy).toFixed(0)} % busy`)
  }
  for (const line of f.failures) console.log(`       ${line}`)
}

interface Scenario { key: string, label: string, instances: number, redis: boolean }

const SCENARIOS: Scenario[] = [
  { key: 'memory', label: 'one instance, memory', instances: 1, redis: false },
  { key: 'redis', label: 'one instance, Redis', instances: 1, redis: true },
  { key: 'redis2', label: 'two instances, one Redis', instances: 2, redis: true }
]

interface Outcome { scenario: Scenario, rate: Figures, max?: Figures, rssMiB: number[] }

/** Start a scenario's trackers (a database of their own on the shared Redis), run both phases, stop them. */
async function runScenario (sc: Scenario, db: number, redis: RedisServer | undefined, ratePaths: string[], maxPaths: string[]): Promise<Outcome> {
  const redisUrl = redis?.url
  const redisPid = sc.redis ? redis?.pid : undefined
  const trackers = EXTERNAL !== undefined && EXTERNAL !== ''
    ? [new ExternalTracker(EXTERNAL)]
    : Array.from({ length: sc.instances }, () => new Tracker(sc.redis && redisUrl !== undefined ? ['--store', `${redisUrl}/${db}`] : []))
  // however we leave, the children go with us
  const killChildren = (): void => { for (const t of trackers) t.child?.kill('SIGKILL') }
  process.once('exit', killChildren)
  try {
    const urls = await Promise.all(trackers.map(async t => await t.announceUrl()))
    const targets = trackers.map((tracker, i) => ({ tracker, base: new URL(urls[i]).origin }))
    console.log(`${sc.label}: ${urls.join(', ')}`)
    const rate = await runAll('rate', targets, ratePaths, { overallRate: RATE, connections: CONNECTIONS }, redisPid)
    show(rate)
    let max: Figures | undefined
    if (MAX) {
      max = await runAll('max', targets, maxPaths, { amount: true, connections: CONNECTIONS }, redisPid)
      show(max)
    }
    const rssMiB = trackers.map(t => t.rssMiB()).filter((x): x is number => x !== undefined)
    if (rssMiB.length > 0) console.log(`  tracker RSS ${rssMiB.map(x => `${x.toFixed(0)} MiB`).join(', ')}`)
    return { scenario: sc, rate, max, rssMiB }
  } finally {
    await Promise.all(trackers.map(async t => { await t.stop() }))
    process.off('exit', killChildren)
  }
}

async function main (): Promise<void> {
  const started = performance.now()
  const wanted = (process.env.STORES ?? SCENARIOS.map(s => s.key).join(',')).split(',').map(x => x.trim())
  const scenarios = EXTERNAL !== undefined && EXTERNAL !== ''
    ? [{ key: 'external', label: `the tracker at ${EXTERNAL}`, instances: 1, redis: false }]
    : SCENARIOS.filter(s => wanted.includes(s.key))
  let redis: RedisServer | undefined
  if (scenarios.some(s => s.redis)) {
    if (!hasRedisServer()) {
      console.log('  redis-server is not installed (Debian: apt-get install redis-server): the Redis scenarios are skipped')
    } else {
      redis = await startRedisServer()
    }
  }
  const killRedis = (): void => { void redis?.kill() }
  process.once('exit', killRedis)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { process.exit(130) })
  try {
    const peers = await makePeers()
    console.log(`tracker load: ${PEERS} peers in ${MANIFESTS} swarms, ${CONNECTIONS} connections${redis != null ? `, Redis ${redis.url} (redis-server, no persistence)` : ''}`)
    if (PEERS > 5000 || CONNECTIONS > 128) console.log('  note: past the tracker\'s default per-IP limits (5000 peers, 128 connections): expect 429s and closed connections')

    const cost = await verifyCost(peers)
    console.log(`  verify: ${cost.cpuUs.toFixed(0)} µs CPU per Ed25519 signature check (=> ~${Math.round(1e6 / cost.cpuUs)}/s per core); ` +
      `the tracker's openPeerRecord takes ${cost.loopUs.toFixed(0)} µs of event loop per record (signature check in the thread pool)`)

    // enough records for the whole phase, plus the one each connection builds ahead; every
    // scenario starts on an empty store (a fresh process, or a database of its own), so all
    // replay the same records
    const rateRounds = Math.ceil((RATE * DURATION * 1.05 + 2 * CONNECTIONS) / PEERS)
    const maxRounds = MAX ? Math.ceil((MAX_PHASE_RATE * DURATION) / PEERS) : 0
    const t0 = performance.now()
    const ratePaths = await signAnnounces(peers, rateRounds, 0)
    const maxPaths = await signAnnounces(peers, maxRounds, rateRounds)
    console.log(`  signed ${ratePaths.length + maxPaths.length} announces in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    const outcomes: Outcome[] = []
    for (const [i, sc] of scenarios.entries()) {
      if (sc.redis && redis == null) continue
      outcomes.push(await runScenario(sc, i + 1, redis, ratePaths, maxPaths))
    }

    const best = (o: Outcome): number => Math.max(o.rate.perSecond, o.max?.perSecond ?? 0)
    const clean = (o: Outcome): boolean => [o.rate, o.max].every(f => f == null || (f.errors === 0 && f.non2xx === 0))
    const verdicts: string[] = []
    const memory = outcomes.find(o => o.scenario.key === 'memory' || o.scenario.key === 'external')
    if (memory != null) verdicts.push(`${memory.scenario.label}: ${GOAL} announces/s: ${best(memory) >= GOAL && clean(memory) ? 'met' : 'NOT met'} (best ${Math.round(best(memory))}/s, p99 at ${RATE}/s: ${memory.rate.p99} ms${clean(memory) ? '' : '; some requests failed'})`)
    const one = outcomes.find(o => o.scenario.key === 'redis')
    const two = outcomes.find(o => o.scenario.key === 'redis2')
    let ok = memory == null || (best(memory) >= GOAL && clean(memory))
    if (one?.max != null && two?.max != null) {
      const ratio = two.max.perSecond / one.max.perSecond
      const met = ratio >= 1.5 && two.max.p99 < 50 && clean(two)
      ok &&= met
      verdicts.push(`two instances on Redis ≥ 1.5× one, p99 < 50 ms: ${met ? 'met' : 'NOT met'} (${Math.round(two.max.perSecond)}/s = ${ratio.toFixed(2)}× ${Math.round(one.max.perSecond)}/s, p99 ${two.max.p99} ms${clean(two) ? '' : '; some requests failed'})`)
    }
    for (const v of verdicts) console.log(`goal ${v}`)
    if (EXTERNAL === undefined || EXTERNAL === '') await writeResults(started, outcomes, verdicts)
    process.exitCode = ok ? 0 : 1
  } finally {
    await redis?.stop()
    process.off('exit', killRedis)
  }
}

async function writeResults (started: number, outcomes: Outcome[], verdicts: string[]): Promise<void> {
  const header = resultsHeader(started, {
    load: `${PEERS} peers in ${MANIFESTS} swarms, every announce a freshly signed record, ${CONNECTIONS} connections in all (split over the instances)`,
    phases: `"at ${RATE}/s": ${RATE} announces/s for ${DURATION} s; "max": as fast as the connections go, for ${DURATION} s`,
    redis: 'Debian redis-server on 127.0.0.1, no persistence, on the same 2 cores'
  })
  const cell = (f: Figures | undefined, pick: (f: Figures) => string): string => f == null ? '–' : pick(f)
  const rows = outcomes.map(o => `| ${o.scenario.label} | ${Math.round(o.rate.perSecond)} | ${o.rate.p99} ms | ${cell(o.max, f => String(Math.round(f.perSecond)))} | ${cell(o.max, f => `${f.p50} ms`)} | ${cell(o.max, f => `${f.p99} ms`)} | ${cell(o.max ?? o.rate, f => f.trackerCpu === undefined ? '–' : `${f.trackerCpu.total.toFixed(0)} µs`)} | ${cell(o.max ?? o.rate, f => f.others?.redisUs === undefined ? '–' : `${f.others.redisUs.toFixed(0)} µs`)} | ${cell(o.max ?? o.rate, f => f.others === undefined ? '–' : `${(100 * f.others.machineBusy).toFixed(0)} %`)} | ${o.rssMiB.map(x => x.toFixed(0)).join(' + ')} MiB | ${[o.rate, o.max].reduce((n, f) => n + (f == null ? 0 : f.errors + f.non2xx), 0)} |`)
  const md = [
    '# bitswarm tracker load benchmark',
    '',
    ...Object.entries(header).map(([k, v]) => `- ${k}: ${v}`),
    '',
    '| store | ok/s at the set rate | p99 there | max ok/s | p50 at max | p99 at max (worst instance) | tracker CPU per announce | redis-server CPU per announce | machine busy at max | RSS | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ...verdicts.map(v => `- goal ${v}`),
    ''
  ].join('\n')
  await writeFile(join(RESULTS, 'tracker.md'), md)
  await writeFile(join(RESULTS, 'tracker.json'), JSON.stringify({ ...header, outcomes: outcomes.map(o => ({ scenario: o.scenario.key, rate: o.rate, max: o.max, rssMiB: o.rssMiB })), verdicts }, null, 2) + '\n')
  console.log(`results: ${join(RESULTS, 'tracker.md')}, tracker.json`)
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exit(1)
})
