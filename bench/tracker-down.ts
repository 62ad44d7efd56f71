/**
 * Benchmark: how long after the tracker dies does a newcomer get its first piece from a peer it
 * found without the tracker? Goal: under 5 s on loopback.
 *
 * Real `bitswarm` processes on 127.0.0.1: a DHT node (a peer seeding something else), a
 * tracker, a seeder (upload capped, so the swarm is busy) and a leecher that found it through
 * the tracker. The tracker is killed with SIGKILL; at that moment a newcomer starts with the
 * dead tracker's URL and the DHT node's address only. The clock stops at the newcomer's first
 * bytes from a peer found through the DHT or peer exchange. Repeated; median, min and max.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../bitswarm.mjs', import.meta.url))
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const RUNS = Number(process.env.RUNS ?? 3)
const GOAL_MS = 5000

type Event = Record<string, unknown> & { event: string }

class Proc {
  readonly child: ChildProcess
  readonly events: Event[] = []
  private readonly listeners = new Set<(e: Event) => void>()

  constructor (args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let e: Event
      try { e = JSON.parse(line) as Event } catch { return }
      this.events.push(e)
      for (const l of this.listeners) l(e)
    })
  }

  async until (test: (e: Event) => boolean, timeoutMs = 60_000): Promise<Event> {
    const seen = this.events.find(test)
    if (seen != null) return seen
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.listeners.delete(l); reject(new Error('timed out')) }, timeoutMs)
      const l = (e: Event): void => { if (test(e)) { clearTimeout(t); this.listeners.delete(l); resolve(e) } }
      this.listeners.add(l)
    })
  }

  async stop (): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    const exited = new Promise(resolve => this.child.once('exit', resolve))
    this.child.kill('SIGINT')
    const t = setTimeout(() => this.child.kill('SIGKILL'), 4000)
    await exited
    clearTimeout(t)
  }
}

const withoutTracker = (e: Event): number => {
  const from = (e.downloadedFrom ?? {}) as Record<string, number>
  return (from.dht ?? 0) + (from.pex ?? 0) + (from.cache ?? 0) + (from.bootstrap ?? 0)
}

async function once (dir: string, run: number): Promise<number> {
  const env = { BITSWARM_STATE_DIR: join(dir, `state${run}`) }
  const procs: Proc[] = []
  const start = (args: string[]): Proc => { const p = new Proc(args, env); procs.push(p); return p }
  try {
    const other = join(dir, `other${run}.bin`)
    await writeFile(other, randomBytes(4096))
    const dhtNode = start(['seed', other, '--listen', LOOPBACK, '--json'])
    const dhtAddr = String(((await dhtNode.until(e => e.event === 'seeding')).multiaddrs as string[])[0])

    const tracker = start(['tracker', '--port', '0', '--json'])
    const announce = String((await tracker.until(e => e.event === 'listening')).announce)
    const seeder = start(['seed', join(dir, 'data.bin'), '--tracker', announce, '--bootstrap', dhtAddr, '--listen', LOOPBACK, '--max-upload-rate', '4MiB', '--json'])
    const cid = String((await seeder.until(e => e.event === 'seeding')).cid)
    const leecher = start(['get', cid, '--tracker', announce, '--bootstrap', dhtAddr, '--out', join(dir, `a${run}`), '--listen', LOOPBACK, '--stats-interval', '0.2', '--json'])
    await leecher.until(e => e.event === 'stats' && Number(e.have) > 0)
    // let the members' provider records settle, as they would in a swarm that has run a while
    await new Promise(resolve => setTimeout(resolve, 1000))

    tracker.child.kill('SIGKILL')
    const died = Date.now()
    const newcomer = start(['get', cid, '--tracker', announce, '--bootstrap', dhtAddr, '--out', join(dir, `b${run}`), '--listen', LOOPBACK, '--stats-interval', '0.05', '--json'])
    await newcomer.until(e => e.event === 'stats' && withoutTracker(e) > 0)
    return Date.now() - died
  } finally {
    await Promise.all(procs.map(async p => { await p.stop() }))
  }
}

async function main (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bitswarm-bench-'))
  try {
    await writeFile(join(dir, 'data.bin'), randomBytes(32 * 1024 * 1024))
    const times: number[] = []
    for (let run = 0; run < RUNS; run++) {
      const ms = await once(dir, run)
      times.push(ms)
      console.log(`run ${run + 1}/${RUNS}: first piece from a peer found without the tracker ${(ms / 1000).toFixed(2)} s after its death`)
    }
    times.sort((a, b) => a - b)
    const median = times[Math.floor(times.length / 2)]
    console.log(`tracker death → first piece without it (${cpus().length} cores, ${RUNS} runs): median ${(median / 1000).toFixed(2)} s, min ${(times[0] / 1000).toFixed(2)} s, max ${(times[times.length - 1] / 1000).toFixed(2)} s; goal < ${GOAL_MS / 1000} s: ${median < GOAL_MS ? 'met' : 'NOT met'}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
