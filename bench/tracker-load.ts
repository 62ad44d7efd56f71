/**
 * Load test of the tracker on loopback: how many signed announces per second does it take, and
 * at what latency? Goal: at least 2,000 announces/s, p99 reported.
 *
 * The tracker is a child process (`bitswarm tracker --port 0 --json`), so the load generator
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
 *   env: PEERS=2000 MANIFESTS=20 RATE=2000 DURATION=10 CONNECTIONS=50 MAX=1
 *        TRACKER=<announce url> to load a tracker started elsewhere (e.g. under --cpu-prof)
 *
 * Every peer announces from 127.0.0.1, so the tracker's per-IP limits apply to the whole load:
 * its defaults (5000 peer entries, 128 connections per IP) hold PEERS and CONNECTIONS up to those.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
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

  constructor () {
    this.child = spawn(process.execPath, [CLI, 'tracker', '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
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
    const read = (path: string): number => {
      const stat = readFileSync(path, 'utf8')
      // the fields after the command name (which may hold spaces): utime and stime are the 12th and 13th
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    }
    try {
      return { total: read(`/proc/${pid}/stat`), loop: read(`/proc/${pid}/task/${pid}/stat`) }
    } catch {
      return undefined
    }
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

interface Figures { phase: string, seconds: number, sent: number, ok: number, perSecond: number, p50: number, p99: number, max: number, errors: number, timeouts: number, non2xx: number, codes: string, failures: string[], trackerCpu?: Cpu }

async function run (phase: string, url: string, paths: string[], options: { overallRate?: number, amount?: number }, cpuSeconds: () => Cpu | undefined): Promise<Figures> {
  const cpu0 = cpuSeconds()
  let next = 0
  const failures = new Map<string, number>()
  const instance = autocannon({
    url,
    connections: CONNECTIONS,
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
  for (const line of f.failures) console.log(`       ${line}`)
}

async function main (): Promise<void> {
  const tracker = EXTERNAL !== undefined && EXTERNAL !== '' ? new ExternalTracker(EXTERNAL) : new Tracker()
  // however we leave, the child goes with us
  const killChild = (): void => { tracker.child?.kill('SIGKILL') }
  process.once('exit', killChild)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killChild(); process.exit(130) })
  try {
    const [announceUrl, peers] = await Promise.all([tracker.announceUrl(), makePeers()])
    const base = new URL(announceUrl).origin
    console.log(`tracker load: ${PEERS} peers in ${MANIFESTS} swarms, ${CONNECTIONS} connections, tracker ${announceUrl} ${tracker.child == null ? '' : `(child pid ${tracker.child.pid ?? '?'})`}`)
    if (PEERS > 5000 || CONNECTIONS > 128) console.log('  note: past the tracker\'s default per-IP limits (5000 peers, 128 connections): expect 429s and closed connections')

    const cost = await verifyCost(peers)
    console.log(`  verify: ${cost.cpuUs.toFixed(0)} µs CPU per Ed25519 signature check (=> ~${Math.round(1e6 / cost.cpuUs)}/s per core); ` +
      `the tracker's openPeerRecord takes ${cost.loopUs.toFixed(0)} µs of event loop per record (signature check in the thread pool)`)

    // enough records for the whole phase, plus the one each connection builds ahead
    const rateRounds = Math.ceil((RATE * DURATION * 1.05 + 2 * CONNECTIONS) / PEERS)
    const maxRounds = MAX ? Math.ceil((MAX_PHASE_RATE * DURATION) / PEERS) : 0
    let t0 = performance.now()
    const ratePaths = await signAnnounces(peers, rateRounds, 0)
    const maxPaths = await signAnnounces(peers, maxRounds, rateRounds)
    console.log(`  signed ${ratePaths.length + maxPaths.length} announces in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    t0 = performance.now()
    const results: Figures[] = []
    const cpu = (): Cpu | undefined => tracker.cpuSeconds()
    results.push(await run('rate', base, ratePaths, { overallRate: RATE }, cpu))
    show(results[0])
    if (MAX) {
      results.push(await run('max', base, maxPaths, { amount: maxPaths.length }, cpu))
      show(results[1])
    }
    const rss = tracker.rssMiB()
    if (rss !== undefined) console.log(`  tracker RSS ${rss.toFixed(0)} MiB after ${((performance.now() - t0) / 1000).toFixed(0)} s of load`)

    const best = Math.max(...results.map(r => r.perSecond))
    const clean = results.every(r => r.errors === 0 && r.non2xx === 0)
    console.log(`goal ${GOAL} announces/s: ${best >= GOAL && clean ? 'met' : 'NOT met'} (best ${Math.round(best)}/s, p99 at ${RATE}/s: ${results[0].p99} ms${clean ? '' : '; some requests failed'})`)
    process.exitCode = best >= GOAL && clean ? 0 : 1
  } finally {
    await tracker.stop()
    process.off('exit', killChild)
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exit(1)
})
