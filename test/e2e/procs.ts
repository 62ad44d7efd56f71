// Helpers for the end-to-end CLI tests (not a test file itself): spawn the built CLI as real
// processes, read their NDJSON stdout, wait for events, and make sure every one of them ends.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { createInterface } from 'node:readline'

/** The built CLI: `npm run build` (or `npm test`, via pretest) must have run. */
export const CLI = resolve('dist/bitswarm.mjs')
export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

export interface JsonEvent { event: string, [k: string]: unknown }
export interface Exit { code: number | null, signal: NodeJS.Signals | null }

interface Waiter {
  event: string
  match: (e: JsonEvent) => boolean
  resolve: (e: JsonEvent) => void
}

/** One `bitswarm …` process. Every instance is registered so that `stopAll` can end it. */
export class CliProc {
  readonly name: string
  readonly args: string[]
  readonly child: ChildProcess
  /** every stdout line, raw, in order */
  readonly stdout: string[] = []
  /** every stdout line that parsed as a JSON object with an `event` */
  readonly events: JsonEvent[] = []
  readonly stderr: string[] = []
  readonly exited: Promise<Exit>
  exit: Exit | undefined
  private readonly waiters: Waiter[] = []

  constructor (name: string, args: string[], opts: { cwd?: string } = {}) {
    this.name = name
    this.args = args
    // the peer cache goes to the test's directory, never the user's own state dir
    const env = { ...process.env, BITSWARM_STATE_DIR: join(opts.cwd ?? tmpdir(), '.bitswarm-state') }
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(this)
    // 'close' (not 'exit'): stdout and stderr are fully read by then
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal }
        running.delete(this)
        resolve(this.exit)
      })
      this.child.once('error', (err) => {
        this.stderr.push(`spawn error: ${err.message}`)
      })
    })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.stdout.push(line)
      let e: unknown
      try { e = JSON.parse(line) } catch { return }
      if (e == null || typeof e !== 'object' || typeof (e as JsonEvent).event !== 'string') return
      this.events.push(e as JsonEvent)
      for (const w of [...this.waiters]) {
        if (w.event === (e as JsonEvent).event && w.match(e as JsonEvent)) {
          this.waiters.splice(this.waiters.indexOf(w), 1)
          w.resolve(e as JsonEvent)
        }
      }
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (line) => { this.stderr.push(line) })
  }

  get running (): boolean {
    return this.exit == null
  }

  /** The latest event of this kind, if any. */
  last (event: string): JsonEvent | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].event === event) return this.events[i]
    return undefined
  }

  /** The first event of this kind (already seen or yet to come) for which `match` holds. */
  async wait (event: string, timeoutMs = 30_000, match: (e: JsonEvent) => boolean = () => true): Promise<JsonEvent> {
    const seen = this.events.find(e => e.event === event && match(e))
    if (seen != null) return seen
    return await new Promise<JsonEvent>((resolve, reject) => {
      const waiter: Waiter = {
        event,
        match,
        resolve: (e) => { clearTimeout(timer); resolve(e) }
      }
      const fail = (why: string): void => {
        const i = this.waiters.indexOf(waiter)
        if (i < 0) return
        this.waiters.splice(i, 1)
        clearTimeout(timer)
        reject(new Error(`${this.name}: ${why} before "${event}"\n${this.describe()}`))
      }
      const timer = setTimeout(() => { fail(`no event within ${timeoutMs} ms`) }, timeoutMs)
      this.waiters.push(waiter)
      void this.exited.then((x) => { fail(`exited (code ${String(x.code)}, signal ${String(x.signal)})`) })
    })
  }

  /** Waits for the process to end by itself; throws (and kills it) after `timeoutMs`. */
  async waitExit (timeoutMs = 15_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL')
        reject(new Error(`${this.name}: did not exit within ${timeoutMs} ms\n${this.describe()}`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([this.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
  async stop (signal: NodeJS.Signals = 'SIGINT', graceMs = 5000): Promise<Exit> {
    if (this.exit != null) return this.exit
    this.child.kill(signal)
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** For failure messages: the command and the tail of stderr. */
  describe (): string {
    return `  $ bitswarm ${this.args.join(' ')}\n  stderr:\n${this.stderr.slice(-20).map(l => `    ${l}`).join('\n')}`
  }
}

const running = new Set<CliProc>()

/** Ends every process still running: SIGINT, then SIGKILL after `graceMs`. */
export async function stopAll (graceMs = 3000): Promise<void> {
  await Promise.all([...running].map(async p => { await p.stop('SIGINT', graceMs) }))
}

const dirs: string[] = []

/** A fresh directory under os.tmpdir(), removed by `removeTempDirs`. */
export async function tempDir (prefix = 'bitswarm-e2e-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

export async function removeTempDirs (): Promise<void> {
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
}

/** Writes `bytes` random bytes to `path`; returns their sha256 (hex). */
export async function writeRandomFile (path: string, bytes: number): Promise<string> {
  const data = randomBytes(bytes)
  await writeFile(path, data)
  return createHash('sha256').update(data).digest('hex')
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Every path under `dir` (relative, sorted); [] if `dir` does not exist. */
export async function listTree (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[])
  return entries.map(e => relative(dir, join(dir, e))).sort()
}

/** Polls `check` every `everyMs` until it returns true; throws `what` after `timeoutMs`. */
export async function until (check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** Registers the hooks every e2e file needs: the CLI must be built; every process and temp dir goes. */
export function useProcessCleanup (): void {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
  })
  afterEach(async () => {
    await stopAll()
    await removeTempDirs()
  })
  afterAll(async () => {
    await stopAll()
    await removeTempDirs()
  })
}
