/**
 * `bitswarm demo`: a whole swarm on this machine in one command. It writes a random file,
 * starts a tracker, a seeder and N leechers as separate processes on 127.0.0.1 (the same
 * commands a person would type in five terminals), shows every peer's stats while they run,
 * and ends with a summary: time, bytes up and down per peer, and a sha256 check of every copy.
 *
 * With `--ui`, one page shows every peer side by side: each process runs its own page
 * (`--ui 127.0.0.1:0`), and the demo's page polls theirs (src/ui/remote-source.ts), one column
 * each. Uploads are capped then (3 MiB/s per peer unless --max-upload-rate says otherwise) so
 * that there is something to watch, and the page stays up after the summary until Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { formatBytes, formatRate } from './format.js'
import { progressBar } from './reporter.js'
import { UsageError } from './errors.js'
import type { Output } from './output.js'
import { rateOption } from './options.js'
import type { RemoteSource } from '../ui/remote-source.js'
import type { UiServer } from '../ui/server.js'

// the demo runs inside the `bitswarm` command: its peers are more of the same script (the
// bundle users run, or dist/src/cli/main.js)
const CLI = process.argv[1]
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

interface JsonEvent { event: string, [k: string]: unknown }

class Proc {
  readonly name: string
  readonly child: ChildProcess
  last: Record<string, JsonEvent> = {}
  private readonly waiters: Array<{ event: string, resolve: (e: JsonEvent) => void }> = []
  readonly exited: Promise<number | null>

  constructor (name: string, args: string[], onStderr: (name: string, line: string) => void) {
    this.name = name
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.exited = new Promise(resolve => this.child.once('exit', (code) => { resolve(code) }))
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let e: JsonEvent
      try { e = JSON.parse(line) as JsonEvent } catch { return }
      this.last[e.event] = e
      for (const w of this.waiters.filter(w => w.event === e.event)) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        w.resolve(e)
      }
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (line) => { onStderr(name, line) })
  }

  async wait (event: string, timeoutMs = 30_000): Promise<JsonEvent> {
    const seen = this.last[event]
    if (seen != null) return seen
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiters.push({ event, resolve: (e) => { clearTimeout(t); resolve(e) } })
      void this.exited.then((code) => { clearTimeout(t); reject(new Error(`${this.name} exited (code ${String(code)}) before "${event}"`)) })
    })
  }

  async stop (): Promise<void> {
    if (this.child.exitCode == null && this.child.signalCode == null) this.child.kill('SIGINT')
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(t)
  }
}

async function writeRandomFile (path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let left = bytes; left > 0;) {
    const chunk = randomBytes(Math.min(left, 1 << 20))
    hash.update(chunk)
    left -= chunk.byteLength
    if (!out.write(chunk)) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
  }
  await new Promise<void>((resolve, reject) => { out.end(() => { resolve() }); out.once('error', reject) })
  return hash.digest('hex')
}

async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** A bare `--ui` (no value, or a flag next) means a free port on loopback. */
function bareUi (argv: string[]): string[] {
  return argv.map((a, i) => a === '--ui' && (i + 1 >= argv.length || argv[i + 1].startsWith('-')) ? '--ui=127.0.0.1:0' : a)
}

/** Each peer's upload cap with --ui, when --max-upload-rate gives none: 64 MiB to 3 leechers takes some 20 s. */
const UI_UPLOAD_RATE = '3MiB'

export async function runDemo (argv: string[], out: Output): Promise<void> {
  const { values } = parseArgs({ args: bareUi(argv), options: { size: { type: 'string' }, leechers: { type: 'string' }, keep: { type: 'boolean' }, json: { type: 'boolean' }, ui: { type: 'string' }, 'max-upload-rate': { type: 'string' } }, strict: true })
  const sizeMiB = Number(values.size ?? 64)
  const leechers = Number(values.leechers ?? 3)
  if (!(sizeMiB > 0 && sizeMiB <= 4096)) throw new UsageError('--size is in MiB, 1..4096')
  if (!Number.isInteger(leechers) || leechers < 1 || leechers > 20) throw new UsageError('--leechers must be 1..20')
  const { parseUiAddress } = await import('./ui-option.js')
  const uiAddress = values.ui == null ? undefined : parseUiAddress(values.ui)
  const uploadRate = values['max-upload-rate'] ?? (uiAddress != null ? UI_UPLOAD_RATE : undefined)
  rateOption(uploadRate)
  // every peer's own page (polled by the demo's), and the upload cap
  const peerFlags = [...(uiAddress != null ? ['--ui', '127.0.0.1:0'] : []), ...(uploadRate != null ? ['--max-upload-rate', uploadRate] : [])]
  const columns: RemoteSource[] = []
  let ui: UiServer | undefined
  const watch = async (p: Proc): Promise<void> => {
    if (uiAddress == null) return
    const { RemoteSource } = await import('../ui/remote-source.js')
    columns.push(new RemoteSource(p.name, p.wait('ui', 600_000).then(e => String(e.url))))
  }

  const dir = await mkdtemp(join(tmpdir(), 'bitswarm-demo-'))
  const file = join(dir, 'demo.bin')
  const procs: Proc[] = []
  // each process's diagnostics, labelled with who said it
  const warn = (name: string, line: string): void => { out.warn(`  ${name.padEnd(9)}| ${line.replace(/^tracker: /, '')}`) }
  let ok = false
  try {
    out.line(`bitswarm demo: a tracker, 1 seeder and ${leechers} leechers on 127.0.0.1, sharing a ${sizeMiB} MiB random file`)
    out.line(`  working directory: ${dir}`)
    const want = await writeRandomFile(file, Math.round(sizeMiB * 1024 * 1024))

    const tracker = new Proc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], warn)
    procs.push(tracker)
    const announce = String((await tracker.wait('listening')).announce)
    out.line(`  tracker: ${announce}`)
    if (uiAddress != null) {
      ui = await (await import('./ui-option.js')).startUi(uiAddress, () => columns, out, { interval: 1000, title: `bitswarm demo: 1 seeder, ${leechers} leechers, ${sizeMiB} MiB`, human: url => `  page:    ${url} (every peer side by side)` })
      if (values['max-upload-rate'] == null) out.line(`  uploads capped at ${UI_UPLOAD_RATE}/s per peer, to give the page something to show (--max-upload-rate to change)`)
    }

    // the demo's peers remember each other in the demo's own directory, not in the user's
    const state = ['--state-dir', join(dir, 'state')]
    const seeder = new Proc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, ...state, ...peerFlags, '--json'], warn)
    procs.push(seeder)
    await watch(seeder)
    const seeding = await seeder.wait('seeding', 120_000)
    const cid = String(seeding.cid)
    out.line(`  seeder:  cid ${cid}`)

    const started = Date.now()
    const peers: Proc[] = []
    for (let i = 1; i <= leechers; i++) {
      // --seed: a leecher keeps uploading after it finishes, as a good swarm member does
      const p = new Proc(`leecher${i}`, ['get', cid, '--tracker', announce, '--out', join(dir, `leecher${i}`), '--listen', LOOPBACK, ...state, '--seed', ...peerFlags, '--json'], warn)
      procs.push(p)
      peers.push(p)
      await watch(p)
    }
    const everyone = [seeder, ...peers]
    const show = setInterval(() => {
      out.line(`  t=${((Date.now() - started) / 1000).toFixed(0)}s`)
      for (const p of everyone) {
        const s = p.last.stats
        if (s == null) { out.line(`    ${p.name.padEnd(9)} starting…`); continue }
        out.line(`    ${p.name.padEnd(9)} ${progressBar(Number(s.progress), 20)} peers ${String(s.peers)}  ↓ ${formatRate(Number(s.downloadRate)).padStart(11)}  ↑ ${formatRate(Number(s.uploadRate)).padStart(11)}`)
      }
    }, 1000)
    const done = await Promise.all(peers.map(async p => ({ p, at: (await p.wait('complete', 600_000), Date.now()) })))
    clearInterval(show)
    const elapsed = (Math.max(...done.map(d => d.at)) - started) / 1000
    // a last stats line from each, so the totals include the final pieces
    await new Promise(resolve => setTimeout(resolve, 1200))

    out.line('')
    out.line(`summary: ${leechers} leechers got ${sizeMiB} MiB in ${elapsed.toFixed(1)} s`)
    out.line(`  ${'peer'.padEnd(9)} ${'finished'.padStart(9)} ${'downloaded'.padStart(11)} ${'uploaded'.padStart(11)}  sha256`)
    out.line(`  ${seeder.name.padEnd(9)} ${'-'.padStart(9)} ${formatBytes(Number(seeder.last.stats?.downloaded ?? 0)).padStart(11)} ${formatBytes(Number(seeder.last.stats?.uploaded ?? 0)).padStart(11)}  ${want.slice(0, 16)}… (original)`)
    ok = true
    for (const { p, at } of done) {
      const got = await sha256File(String(p.last.complete.path))
      const same = got === want
      ok &&= same
      out.line(`  ${p.name.padEnd(9)} ${`${((at - started) / 1000).toFixed(1)}s`.padStart(9)} ${formatBytes(Number(p.last.stats?.downloaded ?? 0)).padStart(11)} ${formatBytes(Number(p.last.stats?.uploaded ?? 0)).padStart(11)}  ${got.slice(0, 16)}… ${same ? 'OK' : 'MISMATCH'}`)
    }
    const shared = peers.reduce((n, p) => n + Number(p.last.stats?.uploaded ?? 0), 0)
    out.line(`  leechers uploaded ${formatBytes(shared)} to each other: a swarm, not a client-server download`)
    out.line(ok ? 'every copy is byte-identical to the original' : 'SOME COPIES DIFFER')
    if (ui != null) {
      // listening before the line: a script that sends SIGINT as soon as it reads it gets a clean stop
      const signal = new Promise<void>((resolve) => {
        process.once('SIGINT', () => { resolve() })
        process.once('SIGTERM', () => { resolve() })
      })
      out.line(`the page stays up at ${ui.url} (the peers keep seeding): Ctrl-C to end`)
      await signal
    }
  } finally {
    for (const c of columns) c.stop()
    await ui?.stop()
    // peers first, so their "stopped" announces reach the tracker
    await Promise.all(procs.slice(1).map(async p => { await p.stop() }))
    await procs[0]?.stop()
    if (values.keep !== true) await rm(dir, { recursive: true, force: true })
  }
  if (!ok) process.exitCode = 1
}
