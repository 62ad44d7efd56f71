/**
 * What the loopback benchmarks share (bench/swarm.ts, bench/fairness.ts): real `bitswarm`
 * processes with their NDJSON events timed as they are read, a run's processes stopped together
 * (SIGINT, then SIGKILL after a grace) whatever happened, a temporary base directory for state and
 * random data files, CPU time and RSS from /proc, and the Kumar–Ross bound.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../bitswarm.mjs', import.meta.url))
// dist/bench/*.js → <repo>/bench/results
export const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url))
export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
export const MiB = 1024 * 1024
const GRACE_MS = 3000

export function envNumber (name: string, fallback: number): number {
  const v = process.env[name]
  if (v == null || v === '') return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`)
  return n
}

// ---------------------------------------------------------------------------------------------
// processes

export type Event = Record<string, unknown> & { event: string }

export class TimeoutError extends Error {
  constructor (what: string) { super(`timed out waiting for ${what}`); this.name = 'TimeoutError' }
}

const live = new Set<Proc>()

export class Proc {
  readonly child: ChildProcess
  readonly events: Array<{ at: number, e: Event }> = []
  readonly spawnedAt: number
  private readonly listeners = new Set<() => void>()
  private readonly stderrTail: string[] = []
  private closed = false

  constructor (readonly name: string, script: string, args: string[], env: NodeJS.ProcessEnv) {
    this.spawnedAt = performance.now()
    this.child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    live.add(this)
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let e: Event
      try { e = JSON.parse(line) as Event } catch { return }
      if (typeof e !== 'object' || e == null || typeof e.event !== 'string') return
      this.events.push({ at: performance.now(), e })
      for (const l of this.listeners) l()
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      this.stderrTail.push(line)
      if (this.stderrTail.length > 8) this.stderrTail.shift()
    })
    this.child.once('close', () => {
      this.closed = true
      live.delete(this)
      for (const l of this.listeners) l()
    })
  }

  get exited (): boolean { return this.child.exitCode != null || this.child.signalCode != null }

  last (name: string): { at: number, e: Event } | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].e.event === name) return this.events[i]
    return undefined
  }

  /** The first event passing `test` (with the time we read it); rejects on exit or deadline. */
  async until (test: (e: Event) => boolean, deadline: number, what: string): Promise<{ at: number, e: Event }> {
    return await new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => { clearTimeout(timer); this.listeners.delete(check) }
      const check = (): void => {
        const hit = this.events.find(x => test(x.e))
        if (hit != null) { done(); resolve(hit); return }
        if (this.closed) {
          done()
          const tail = this.stderrTail.length > 0 ? `: ${this.stderrTail.join(' | ')}` : ''
          reject(new Error(`${this.name} exited (code ${String(this.child.exitCode ?? this.child.signalCode)}) before ${what}${tail}`))
        }
      }
      timer = setTimeout(() => { done(); reject(new TimeoutError(`${this.name}: ${what}`)) }, Math.max(0, deadline - performance.now()))
      this.listeners.add(check)
      check()
    })
  }

  async stop (): Promise<void> {
    if (this.closed) return
    const closed = new Promise<void>(resolve => { this.child.once('close', () => { resolve() }) })
    if (!this.exited) this.child.kill('SIGINT')
    const t = setTimeout(() => { if (!this.exited) this.child.kill('SIGKILL') }, GRACE_MS)
    await closed
    clearTimeout(t)
  }
}

/** A run's processes: peers are stopped before the tracker, so that their "stopped" reaches it. */
export class Run {
  readonly procs: Proc[] = []
  readonly deadline: number
  constructor (readonly dir: string, timeoutMs: number) { this.deadline = performance.now() + timeoutMs }

  start (name: string, args: string[], script = CLI): Proc {
    const p = new Proc(name, script, args, { BITSWARM_STATE_DIR: join(this.dir, `state-${name}`) })
    this.procs.push(p)
    return p
  }

  async stopAll (): Promise<void> {
    const trackers = this.procs.filter(p => p.name === 'tracker')
    await Promise.all(this.procs.filter(p => p.name !== 'tracker').map(async p => { await p.stop() }))
    await Promise.all(trackers.map(async p => { await p.stop() }))
  }

  async tracker (): Promise<string> {
    const t = this.start('tracker', ['tracker', '--port', '0', '--json'])
    return String((await t.until(e => e.event === 'listening', this.deadline, 'listening')).e.announce)
  }

  async seeder (file: string, announce: string, extra: string[] = []): Promise<{ proc: Proc, cid: string }> {
    const proc = this.start('seeder', ['seed', file, '--manifest', join(this.dir, 'manifest.bitswarm'), '--tracker', announce,
      '--listen', LOOPBACK, '--no-dht', '--stats-interval', '0.5', '--json', ...extra])
    const cid = String((await proc.until(e => e.event === 'seeding', this.deadline, 'seeding')).e.cid)
    return { proc, cid }
  }

  leecher (i: number, cid: string, announce: string, extra: string[] = [], name = `leecher${i}`): Proc {
    return this.start(name, ['get', cid, '--out', join(this.dir, `out${i}`), '--tracker', announce,
      '--listen', LOOPBACK, '--no-dht', '--json', ...extra])
  }
}

// ---------------------------------------------------------------------------------------------
// the base directory (state dirs, data files), removed at the end or on Ctrl-C

let baseDir = ''

process.once('SIGINT', () => {
  for (const p of live) p.child.kill('SIGKILL')
  if (baseDir !== '') rmSync(baseDir, { recursive: true, force: true })
  process.exit(130)
})

/** Creates the base directory every run and data file goes under. */
export async function openBaseDir (prefix: string): Promise<string> {
  baseDir = await mkdtemp(join(tmpdir(), prefix))
  return baseDir
}

/** Kills whatever is still running and removes the base directory. */
export async function closeBaseDir (): Promise<void> {
  for (const p of live) p.child.kill('SIGKILL')
  if (baseDir !== '') await rm(baseDir, { recursive: true, force: true })
  baseDir = ''
  files.clear()
}

/**
 * Runs `body` in a fresh run directory, then stops its processes and removes the directory, or
 * with `keepDir` leaves it for closeBaseDir(): removing thousands of files right before the next
 * run's timing makes that run pay for them (on a file system mounted with `discard` each removal
 * is a TRIM to the disk, and the next run's file creation waits behind them).
 */
export async function withRun<T> (timeoutMs: number, body: (run: Run) => Promise<T>, options: { keepDir?: boolean } = {}): Promise<T> {
  const dir = await mkdtemp(join(baseDir, 'run-'))
  const run = new Run(dir, timeoutMs)
  try {
    return await body(run)
  } finally {
    await run.stopAll()
    if (options.keepDir !== true) await rm(dir, { recursive: true, force: true })
  }
}

const files = new Map<number, string>()

/** A random file of `mib` MiB, written once (1 MiB chunks, streamed to disk). */
export async function dataFile (mib: number): Promise<string> {
  const known = files.get(mib)
  if (known != null) return known
  const path = join(baseDir, `data-${mib}MiB.bin`)
  const out = createWriteStream(path)
  const bytes = Math.round(mib * MiB)
  for (let done = 0; done < bytes; done += MiB) {
    if (!out.write(randomBytes(Math.min(MiB, bytes - done)))) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
  }
  await new Promise<void>((resolve, reject) => { out.end(() => { resolve() }); out.once('error', reject) })
  if ((await stat(path)).size !== bytes) throw new Error(`short write of ${path}`)
  files.set(mib, path)
  return path
}

// ---------------------------------------------------------------------------------------------
// /proc

export async function rss (pid: number | undefined): Promise<number> {
  if (pid == null) return 0
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}

/** CPU seconds (user + system, all threads) a live process has used so far; 0 if unknown. */
export async function cpuSeconds (pid: number | undefined): Promise<number> {
  if (pid == null) return 0
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // fields after "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)),
    // in clock ticks of USER_HZ = 100 on Linux
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return 0
  }
}

export const CORES = cpus().length

// ---------------------------------------------------------------------------------------------
// figures

/** Kumar–Ross lower bound on the time to give N peers a file of F bytes (rates in bytes/s). */
export function kumarRoss (F: number, us: number, ui: number[], dmin = Infinity): number {
  return Math.max(F / us, F / dmin, ui.length * F / (us + ui.reduce((a, b) => a + b, 0)))
}

export function median (xs: number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export const secs = (ms: number): number => ms / 1000
export const mibps = (bytes: number, ms: number): number => (bytes / MiB) / (ms / 1000)

/** The header of a results file: when, on what, and how long the whole benchmark took. */
export function resultsHeader (started: number, extra: Record<string, string>): Record<string, string> {
  const cpu = cpus()
  return {
    date: new Date().toISOString(),
    machine: `${cpu.length} cores (${cpu[0]?.model ?? 'unknown'})`,
    node: process.version,
    ...extra,
    'total time': `${((performance.now() - started) / 1000).toFixed(0)} s`
  }
}
