/**
 * Benchmark: memory stays bounded. A seeder and a leecher (real `bitswarm` processes on
 * 127.0.0.1) move a 2 GiB file; every 200 ms we read each process's resident set size from
 * /proc and report the peaks. Goal: every peer under 250 MB.
 * SIZE_MIB=… picks another size.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../bitswarm.mjs', import.meta.url))
const SIZE_MIB = Number(process.env.SIZE_MIB ?? 2048)
const GOAL_MB = 250

async function rssBytes (pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}

function start (args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess, event: (name: string) => Promise<Record<string, unknown>> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } })
  const seen = new Map<string, Record<string, unknown>>()
  const waiting = new Map<string, (e: Record<string, unknown>) => void>()
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      const e = JSON.parse(line) as Record<string, unknown>
      const name = String(e.event)
      seen.set(name, e)
      waiting.get(name)?.(e)
    } catch {}
  })
  const event = async (name: string): Promise<Record<string, unknown>> => await new Promise(resolve => {
    const e = seen.get(name)
    if (e != null) resolve(e)
    else waiting.set(name, resolve)
  })
  return { child, event }
}

async function main (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bitswarm-mem-'))
  const children: ChildProcess[] = []
  try {
    const file = join(dir, 'big.bin')
    const out = createWriteStream(file)
    for (let i = 0; i < SIZE_MIB; i++) {
      if (!out.write(randomBytes(1024 * 1024))) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
    }
    await new Promise<void>(resolve => out.end(() => { resolve() }))
    const env = { BITSWARM_STATE_DIR: join(dir, 'state') }
    const tracker = start(['tracker', '--port', '0', '--json'], env)
    children.push(tracker.child)
    const announce = String((await tracker.event('listening')).announce)
    const seeder = start(['seed', file, '--tracker', announce, '--listen', '/ip4/127.0.0.1/tcp/0', '--json'], env)
    children.push(seeder.child)
    const cid = String((await seeder.event('seeding')).cid)
    const t0 = Date.now()
    const leecher = start(['get', cid, '--tracker', announce, '--out', join(dir, 'out'), '--listen', '/ip4/127.0.0.1/tcp/0', '--json'], env)
    children.push(leecher.child)
    const peak = { seeder: 0, leecher: 0 }
    const sampler = setInterval(() => {
      void rssBytes(seeder.child.pid ?? 0).then(r => { peak.seeder = Math.max(peak.seeder, r) })
      void rssBytes(leecher.child.pid ?? 0).then(r => { peak.leecher = Math.max(peak.leecher, r) })
    }, 200)
    await leecher.event('complete')
    clearInterval(sampler)
    const secs = (Date.now() - t0) / 1000
    const mb = (n: number): string => (n / 1e6).toFixed(0)
    console.log(`${SIZE_MIB} MiB in ${secs.toFixed(1)} s (${(SIZE_MIB / secs).toFixed(1)} MiB/s); peak RSS: seeder ${mb(peak.seeder)} MB, leecher ${mb(peak.leecher)} MB; goal < ${GOAL_MB} MB each: ${Math.max(peak.seeder, peak.leecher) < GOAL_MB * 1e6 ? 'met' : 'NOT met'}`)
  } finally {
    // peers first, so that their "stopped" reaches the tracker
    for (const c of children.slice(1)) c.kill('SIGINT')
    await new Promise(resolve => setTimeout(resolve, 1500))
    children[0]?.kill('SIGINT')
    await new Promise(resolve => setTimeout(resolve, 500))
    for (const c of children) c.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
