/**
 * The live page's server (node:http, read-only): the page itself (index.html, app.js, style.css,
 * files beside this module), `/events` (server-sent events: every source's snapshot each
 * interval, the rate history first) and `/snapshot.json` (the same, once; the demo's page polls
 * its peers' pages through it).
 *
 * The page builds its DOM with textContent only, and the headers forbid anything else: a strict
 * Content-Security-Policy (scripts and styles from this server only, no inline script, Trusted
 * Types for every injection sink). Requests naming a host that is not an IP address, `localhost`
 * or the host we were told to bind are refused: a web page may not read the swarm through DNS
 * rebinding.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { isIP, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { UiSnapshot, UiSource } from './snapshot.js'

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'"
].join('; ')

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store'
}

const STATIC: Record<string, { file: string, type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' }
}

/** Snapshots a second at most this many times (the page redraws each one). */
export const MIN_INTERVAL_MS = 250
/** Rate samples kept per source for the chart: 5 minutes at 1 s. */
export const HISTORY = 300
/** Pages watching at once. */
export const MAX_CLIENTS = 16

export class UiStaticFilesError extends Error {
  override name = 'UiStaticFilesError'
}

/**
 * Where the page's files are: `static/` beside this module (src/ui/, under vitest and tsx), or
 * dist/ui/, where the build copies them: `ui/` beside the bundle (dist/bitswarm.mjs, what the
 * package's bin runs) or `../../ui/` from dist/src/ui/ (the unbundled build).
 */
export function findStaticDir (): string {
  const tried: string[] = []
  for (const rel of ['./static/', './ui/', '../../ui/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(dir + 'index.html')) return dir
    tried.push(dir)
  }
  throw new UiStaticFilesError(`the page's files (index.html, app.js, style.css) are missing: looked in ${tried.join(' and ')}`)
}

export interface UiServerOptions {
  /** default 127.0.0.1 */
  host?: string
  /** default 0: any free port */
  port?: number
  /** the columns of the page, in order (a function: asked each interval) */
  sources: readonly UiSource[] | (() => readonly UiSource[])
  /** ms between snapshots (default 1000; at least MIN_INTERVAL_MS) */
  interval?: number
  /** the page's heading */
  title?: string
  /** where index.html, app.js and style.css are (default findStaticDir()) */
  staticDir?: string
}

/** A rate sample: [ms since the epoch, download B/s, upload B/s]. */
type Sample = [number, number, number]

interface Message {
  t: number
  title: string
  sources: UiSnapshot[]
  /** per source (same order), the rate samples so far: in the first message only */
  history?: Sample[][]
}

export class UiServer {
  private readonly server: Server
  private readonly files = new Map<string, { body: Buffer, type: string }>()
  private readonly clients = new Set<ServerResponse>()
  private readonly history = new Map<string, Sample[]>()
  private readonly interval: number
  private readonly title: string
  private readonly host: string
  private readonly port: number
  private timer: ReturnType<typeof setInterval> | undefined
  private last: Message | undefined

  constructor (private readonly options: UiServerOptions) {
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.interval = Math.max(MIN_INTERVAL_MS, options.interval ?? 1000)
    this.title = options.title ?? 'bitswarm'
    const dir = options.staticDir ?? findStaticDir()
    for (const [path, { file, type }] of Object.entries(STATIC)) {
      const full = dir.endsWith('/') ? dir + file : `${dir}/${file}`
      if (!existsSync(full)) throw new UiStaticFilesError(`the page's file ${full} is missing`)
      this.files.set(path, { body: readFileSync(full), type })
    }
    this.server = createServer((req, res) => { this.handle(req, res) })
    // a page left open must not keep a stopping process alive
    this.server.keepAliveTimeout = 5_000
  }

  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.tick()
    this.timer = setInterval(() => { this.tick() }, this.interval)
    this.timer.unref()
  }

  /** The address we listen on. */
  get address (): AddressInfo {
    return this.server.address() as AddressInfo
  }

  /** The page's URL (an unspecified bind address is shown as loopback). */
  get url (): string {
    const { address, port } = this.address
    const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}/`
  }

  async stop (): Promise<void> {
    if (this.timer != null) clearInterval(this.timer)
    this.timer = undefined
    for (const res of this.clients) res.end()
    this.clients.clear()
    await new Promise<void>((resolve) => {
      this.server.close(() => { resolve() })
      this.server.closeAllConnections()
    })
  }

  /** The snapshot of every source now (and the rate history recorded). */
  private tick (): void {
    const t = Date.now()
    const sources = typeof this.options.sources === 'function' ? this.options.sources() : this.options.sources
    const snaps = sources.map((s): UiSnapshot => {
      try {
        return s.snapshot() ?? { name: s.name, t, phase: 'starting' }
      } catch {
        // one source failing leaves the others on the page
        return { name: s.name, t, phase: 'starting' }
      }
    })
    for (const s of snaps) {
      if (s.stats == null) continue
      const h = this.history.get(s.name) ?? []
      h.push([t, Math.round(s.stats.downloadRate), Math.round(s.stats.uploadRate)])
      if (h.length > HISTORY) h.splice(0, h.length - HISTORY)
      this.history.set(s.name, h)
    }
    this.last = { t, title: this.title, sources: snaps }
    if (this.clients.size === 0) return
    const data = sse('snapshot', this.last)
    for (const res of this.clients) {
      // a page that does not keep up skips snapshots rather than queueing them
      if (!res.writableNeedDrain) res.write(data)
    }
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v)
    if (!this.hostAllowed(req.headers.host)) { text(res, 421, 'unknown host\n'); return }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      text(res, 405, 'read-only\n')
      return
    }
    const path = (req.url ?? '/').split('?')[0]
    const file = this.files.get(path)
    if (file != null) {
      res.writeHead(200, { 'Content-Type': file.type, 'Content-Length': file.body.byteLength })
      res.end(req.method === 'HEAD' ? undefined : file.body)
      return
    }
    if (path === '/snapshot.json') {
      const body = Buffer.from(JSON.stringify(this.message(true)))
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.byteLength })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    if (path === '/events') { this.subscribe(req, res); return }
    if (path === '/favicon.ico') { res.writeHead(204); res.end(); return }
    text(res, 404, 'not found\n')
  }

  private subscribe (req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= MAX_CLIENTS) { text(res, 503, 'too many pages open\n'); return }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' })
    if (req.method === 'HEAD') { res.end(); return }
    res.write('retry: 2000\n\n')
    res.write(sse('snapshot', this.message(true)))
    this.clients.add(res)
    const drop = (): void => { this.clients.delete(res) }
    req.once('close', drop)
    res.once('close', drop)
  }

  /** The latest snapshots, with the rate history when `withHistory`. */
  private message (withHistory: boolean): Message {
    const m = this.last ?? { t: Date.now(), title: this.title, sources: [] }
    if (!withHistory) return m
    return { ...m, history: m.sources.map(s => this.history.get(s.name) ?? []) }
  }

  /** The Host header names us: an IP address, localhost, or the host we bound. */
  private hostAllowed (header: string | undefined): boolean {
    if (header == null) return true
    const name = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d*$/, '')
    const lower = name.toLowerCase()
    return isIP(lower) !== 0 || lower === 'localhost' || lower === this.host.toLowerCase().replace(/^\[|\]$/g, '')
  }
}

export async function startUiServer (options: UiServerOptions): Promise<UiServer> {
  const server = new UiServer(options)
  await server.start()
  return server
}

function sse (event: string, data: unknown): string {
  // JSON has no raw newline: one data line
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

function text (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' })
  res.end(body)
}
