// A child process whose stdout and stderr are read line by line, and whose stdout lines that are
// JSON objects with an `event` (the CLI's `--json`) can be waited for. Not a test file, and free of
// vitest: test/e2e/procs.ts (CliProc) and test/netns/harness.ts (HostProc, which bench/nat.ts runs
// under plain Node) build on it and only spawn.
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface JsonEvent { event: string, [k: string]: unknown }
export interface Exit { code: number | null, signal: NodeJS.Signals | null }

function isEvent (x: unknown): x is JsonEvent {
  return x != null && typeof x === 'object' && typeof (x as JsonEvent).event === 'string'
}

export class JsonProc {
  /** every stdout line, raw, in order */
  readonly stdout: string[] = []
  /** every stdout line that parsed as a JSON object with an `event` */
  readonly events: JsonEvent[] = []
  /** every stderr line, in order (and `spawn error: …` if the spawn failed) */
  readonly stderr: string[] = []
  /** resolves on 'close' (not 'exit'): stdout and stderr are fully read by then */
  readonly exited: Promise<Exit>
  exit: Exit | undefined
  /** the pending waits: each looks at what stdout brought since it last looked */
  private readonly watchers = new Set<() => void>()

  /**
   * @param name  for messages
   * @param argv  the command, as `describe` shows it
   * @param child a spawned process; its stdout and stderr are read when they are pipes
   */
  constructor (readonly name: string, readonly argv: string[], readonly child: ChildProcess) {
    this.exited = new Promise<Exit>((resolve) => {
      child.once('close', (code, signal) => { this.exit = { code, signal }; resolve(this.exit) })
      child.once('error', (err) => { this.stderr.push(`spawn error: ${err.message}`) })
    })
    if (child.stdout != null) {
      createInterface({ input: child.stdout }).on('line', (line) => {
        this.stdout.push(line)
        let e: unknown
        try { e = JSON.parse(line) } catch {}
        if (isEvent(e)) this.events.push(e)
        for (const watch of [...this.watchers]) watch()
      })
    }
    if (child.stderr != null) createInterface({ input: child.stderr }).on('line', (line) => { this.stderr.push(line) })
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
  async wait (event: string, timeoutMs = 30_000, match?: (e: JsonEvent) => boolean): Promise<JsonEvent> {
    const what = `${match == null ? '' : 'matching '}"${event}" event`
    return await this.first(this.events, e => e.event === event && (match == null || match(e)), timeoutMs, what)
  }

  /** The first stdout line (already read or yet to come) for which `match` holds. */
  async waitLine (match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    return await this.first(this.stdout, match, timeoutMs, 'matching stdout line')
  }

  /** Waits for the process to end by itself; kills it and throws after `timeoutMs`. */
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

  /** For failure messages: the command and the tails of stdout and stderr. */
  describe (): string {
    const tail = (lines: string[], n: number): string => lines.slice(-n).map(l => `    ${l}`).join('\n')
    return `  $ ${this.argv.join(' ')}\n  stdout (tail):\n${tail(this.stdout, 5)}\n  stderr (tail):\n${tail(this.stderr, 20)}`
  }

  /**
   * The first item of `list` (one that stdout fills) for which `match` holds, already there or
   * yet to come; every item is tested once, in order. Rejects when the process exits first, after
   * `timeoutMs`, or when `match` throws.
   */
  private async first<T> (list: readonly T[], match: (x: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    let next = 0
    const scan = (): { hit: T } | undefined => {
      while (next < list.length) {
        const x = list[next++]
        if (match(x)) return { hit: x }
      }
      return undefined
    }
    const seen = scan()
    if (seen != null) return seen.hit
    return await new Promise<T>((resolve, reject) => {
      const settle = (): boolean => {
        if (!this.watchers.delete(watch)) return false
        clearTimeout(timer)
        return true
      }
      const fail = (why: string): void => {
        if (settle()) reject(new Error(`${this.name}: ${why}\n${this.describe()}`))
      }
      const watch = (): void => {
        let found: { hit: T } | undefined
        try {
          found = scan()
        } catch (err) {
          if (settle()) reject(err)
          return
        }
        if (found != null && settle()) resolve(found.hit)
      }
      const timer = setTimeout(() => { fail(`no ${what} within ${timeoutMs} ms`) }, timeoutMs)
      this.watchers.add(watch)
      void this.exited.then((x) => { fail(`exited (code ${String(x.code)}, signal ${String(x.signal)}) before a ${what}`) })
    })
  }
}
