// A throwaway redis-server for tests (not a test file itself): Debian's binary, on a free
// 127.0.0.1 port, no persistence, its own temp dir. Callers stop it in afterAll; a process 'exit'
// hook kills whatever is still running, so a failed or interrupted suite leaves no server behind.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server']

/** Path of the redis-server binary, or undefined when it is not installed. */
export function redisServerPath (): string | undefined {
  const fromEnv = process.env.BITSWARM_REDIS_SERVER
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? fromEnv : undefined
  return CANDIDATES.find(p => existsSync(p))
}

export function hasRedisServer (): boolean {
  return redisServerPath() !== undefined
}

/** Why Redis suites are skipped, for `describe.skipIf(...)` titles. */
export const NO_REDIS_REASON = 'redis-server not installed (apt-get install redis-server, or set BITSWARM_REDIS_SERVER)'

// every server process of this test process, for the exit backstop
const running = new Set<ChildProcess>()
let hooked = false

function hookExit (): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const child of running) {
      try { child.kill('SIGKILL') } catch {}
    }
  })
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

/** One PING over a raw socket (no client library): true when the server answers +PONG. */
async function ping (port: number, timeoutMs = 500): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let buffered = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => { done(false) }, timeoutMs)
    socket.once('error', () => { done(false) })
    socket.on('connect', () => { socket.write('PING\r\n') })
    socket.on('data', chunk => {
      buffered += chunk.toString('latin1')
      if (buffered.includes('\r\n')) done(buffered.startsWith('+PONG'))
    })
  })
}

export interface RedisServer {
  readonly port: number
  /** redis://127.0.0.1:PORT */
  readonly url: string
  /** the running server's process id (benchmarks read its CPU time) */
  readonly pid: number | undefined
  /** kill the server (its data is lost: no persistence) */
  kill: () => Promise<void>
  /** start it again on the same port (after kill) */
  restart: () => Promise<void>
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung Redis) */
  pause: () => void
  /** SIGCONT after pause */
  resume: () => void
  /** kill it and remove its temp dir; safe to call twice */
  stop: () => Promise<void>
}

export async function startRedisServer (opts: { port?: number, startTimeoutMs?: number } = {}): Promise<RedisServer> {
  const bin = redisServerPath()
  if (bin === undefined) throw new Error(NO_REDIS_REASON)
  hookExit()
  const port = opts.port ?? await freePort()
  const startTimeoutMs = opts.startTimeoutMs ?? 5000
  const dir = mkdtempSync(join(tmpdir(), 'bitswarm-redis-'))
  let child: ChildProcess | undefined
  let paused = false

  const launch = async (): Promise<void> => {
    const proc = spawn(bin, [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--daemonize', 'no',
      '--loglevel', 'warning',
      '--logfile', ''
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    // its log (warnings only) goes to stdout: kept short, for the error when it fails to start
    let stderr = ''
    const keep = (chunk: Buffer): void => { stderr = (stderr + chunk.toString()).slice(-2000) }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    running.add(proc)
    child = proc
    let exited = false
    proc.once('exit', () => {
      exited = true
      running.delete(proc)
    })
    const deadline = Date.now() + startTimeoutMs
    while (Date.now() < deadline) {
      if (exited) throw new Error(`redis-server exited at start: ${stderr.trim()}`)
      if (await ping(port)) return
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    proc.kill('SIGKILL')
    throw new Error(`redis-server did not answer PING on port ${port} within ${startTimeoutMs} ms: ${stderr.trim()}`)
  }

  const kill = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (proc == null || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>(resolve => proc.once('exit', () => { resolve() }))
    // a stopped process only acts on SIGTERM once continued; SIGKILL is for one that hangs anyway
    if (paused) proc.kill('SIGCONT')
    paused = false
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 2000)
    await exited
    clearTimeout(timer)
  }

  await launch()
  let stopped = false
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid () { return child?.pid },
    kill,
    restart: async () => {
      await kill()
      await launch()
    },
    pause: () => {
      if (child == null) return
      child.kill('SIGSTOP')
      paused = true
    },
    resume: () => {
      if (child == null || !paused) return
      child.kill('SIGCONT')
      paused = false
    },
    stop: async () => {
      if (stopped) return
      stopped = true
      await kill()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
