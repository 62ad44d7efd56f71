// Helpers for the end-to-end CLI tests (not a test file itself): spawn the built CLI as real
// processes, read their NDJSON stdout, wait for events, and make sure every one of them ends.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { JsonProc } from '../helpers/json-proc.js'

/** The built CLI: `npm run build` (or `npm test`, via pretest) must have run. */
export const CLI = resolve('dist/bitswarm.mjs')
export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

export type { Exit, JsonEvent } from '../helpers/json-proc.js'

/**
 * One `bitswarm …` process (see JsonProc for what it reads and waits for). Every instance is
 * registered so that `stopAll` can end it.
 */
export class CliProc extends JsonProc {
  /** the CLI's arguments (without node and the script) */
  readonly args: string[]

  constructor (name: string, args: string[], opts: { cwd?: string } = {}) {
    // the peer cache goes to the test's directory, never the user's own state dir
    const env = { ...process.env, BITSWARM_STATE_DIR: join(opts.cwd ?? tmpdir(), '.bitswarm-state') }
    super(name, ['bitswarm', ...args], spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
    this.args = args
    running.add(this)
    void this.exited.then(() => { running.delete(this) })
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
