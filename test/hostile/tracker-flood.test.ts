// Issue 10 item 11: one host must not exhaust the tracker's sockets (slowloris), and a tiny
// request must not buy a huge answer (the full scrape).
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { build } from 'esbuild'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTrackerServer } from '../../tracker/server.js'
import type { TrackerServer } from '../../tracker/server.js'
import { announceQuery, getJsonFrom, makeCid, makePeer, recordParam } from '../tracker/helpers.js'

const ATTACKER = '127.0.0.2'
const HONEST = '127.0.0.1'
const REPO = resolve(import.meta.dirname, '../..')

let dir: string
let entry: string
const children: ChildProcess[] = []
const sockets: Socket[] = []
const servers: TrackerServer[] = []
let stopFlood = false

beforeAll(async () => {
  // the tracker as operators run it, in a process of its own (for its own descriptor limit),
  // built from the sources of this tree with the default limits
  dir = mkdtempSync(join(tmpdir(), 'bitswarm-tracker-flood-'))
  entry = join(dir, 'tracker.mjs')
  await build({
    stdin: {
      contents: "import './src/polyfill.ts'\nimport { createTrackerServer } from './tracker/server.ts'\n" +
        'const s = createTrackerServer({ port: 0, log: () => {} })\nawait s.start()\nconsole.log(JSON.stringify({ port: s.port }))\n' +
        "process.on('SIGTERM', () => { void s.stop().then(() => process.exit(0)) })\n",
      resolveDir: REPO,
      loader: 'ts'
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // prom-client is CommonJS and requires Node's modules: an ES bundle needs a require of its own
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    outfile: entry,
    logLevel: 'warning'
  })
})

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

afterEach(async () => {
  stopFlood = true
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(children.splice(0).map(async c => {
    if (c.exitCode != null || c.signalCode != null) return
    const exited = new Promise(resolve => c.once('exit', resolve))
    c.kill('SIGKILL')
    await exited
  }))
  await Promise.all(servers.splice(0).map(async s => { await s.stop() }))
})

/** The tracker in a child process under `ulimit -n fds`; resolves with its base URL. */
async function startChild (fds: number): Promise<string> {
  const child = spawn('sh', ['-c', `ulimit -n ${fds} && exec "$0" "$1"`, process.execPath, entry], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', code => { reject(new Error(`tracker exited with ${String(code)}`)) })
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', line => {
      resolve((JSON.parse(line) as { port: number }).port)
    })
  })
  return `http://127.0.0.1:${port}`
}

/** One slowloris socket: starts a request and trickles a header byte now and then, never ending it. */
function slowSocket (port: number, onClose: () => void): Socket {
  const s = connect({ host: '127.0.0.1', port, localAddress: ATTACKER })
  sockets.push(s)
  s.on('connect', () => { s.write('GET /scrape HTTP/1.1\r\nHost: x\r\n') })
  const t = setInterval(() => { s.write('X-a: b\r\n') }, 2000)
  s.on('error', () => {})
  s.on('close', () => { clearInterval(t); onClose() })
  return s
}

/** Keeps `n` slow sockets open from the attacker's address, reopening each one that is dropped. */
function slowloris (port: number, n: number): () => number {
  stopFlood = false
  let open = 0
  const one = (): void => {
    if (stopFlood) return
    open++
    slowSocket(port, () => { open--; setTimeout(one, 50) })
  }
  for (let i = 0; i < n; i++) one()
  return () => open
}

describe('tracker flood (issue 10 item 11)', () => {
  it('300 slow sockets from one host do not lock honest clients out (256 descriptors)', async () => {
    const base = await startChild(256)
    const manifest = await makeCid('slowloris')
    slowloris(Number(new URL(base).port), 300)
    // let the flood reach the tracker's limit
    await new Promise(resolve => setTimeout(resolve, 3000))
    for (let i = 0; i < 3; i++) {
      const r = await getJsonFrom(`${base}/scrape?manifest=${manifest}`, HONEST, 5000)
      expect(r.status).toBe(200)
    }
  })

  it('a socket that never finishes its request is closed', async () => {
    const tracker = createTrackerServer({ port: 0, log: () => {}, headersTimeout: 1000, requestTimeout: 2000 })
    servers.push(tracker)
    await tracker.start()
    const closedAfter = await new Promise<number>(resolve => {
      const t0 = Date.now()
      slowSocket(tracker.port, () => { resolve(Date.now() - t0) })
    })
    // node's default would be 60 s (300 s for the whole request); the machine may be busy
    expect(closedAfter).toBeLessThan(10_000)
  }, 30_000)

  it('an empty scrape does not answer every swarm', async () => {
    const tracker = createTrackerServer({ port: 0, log: () => {} })
    servers.push(tracker)
    await tracker.start()
    const base = `http://127.0.0.1:${tracker.port}`
    const peer = await makePeer()
    for (let i = 0; i < 200; i++) {
      const record = await recordParam(peer.key, ['/ip4/127.0.0.1/tcp/4001'])
      const m = await makeCid(`scrape-${i}`)
      await getJsonFrom(`${base}/announce?${announceQuery({ manifest: m, peer: peer.id, record, uploaded: 0, downloaded: 0, left: 1 })}`, HONEST)
    }
    const request = `${base}/scrape`
    const r = await getJsonFrom(request, HONEST)
    const answer = JSON.stringify(r.body).length
    // at most a few times what was asked: never the whole tracker for a 60-byte request
    expect(answer).toBeLessThan(200)
    expect(r.status).toBe(400)
  })
})
