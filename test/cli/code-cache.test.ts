// The V8 code cache the `bitswarm` command runs its bundle through (src/cli/code-cache.ts): a
// real CommonJS file compiled by V8 with and without a cache, and the real CLI writing one.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { defaultCodeCacheDir, runBundle } from '../../src/cli/code-cache.js'
import { CLI } from '../e2e/procs.js'
import { spawn } from 'node:child_process'

const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })
function temp (): string {
  const d = mkdtempSync(join(tmpdir(), 'bitswarm-code-cache-'))
  dirs.push(d)
  return d
}

/** a temp dir with a bundle in it, and where its caches go */
function setup (): { dir: string, file: string, cacheDir: string } {
  const dir = temp()
  return { dir, file: bundle(dir), cacheDir: join(dir, 'cache') }
}

interface Seen { runs: number, filename?: string, dirname?: string, os?: string, sum?: number }
const seen = (): Seen => (globalThis as unknown as { __codeCacheTest: Seen }).__codeCacheTest

/** a bundle-like CommonJS file: a #! line, require, __filename */
function bundle (dir: string, factor = 2): string {
  const file = join(dir, 'bundle.cjs')
  writeFileSync(file, `#!/usr/bin/env node
'use strict';
const g = globalThis.__codeCacheTest ??= { runs: 0 };
g.runs++;
g.filename = __filename; g.dirname = __dirname;
function work (n) { let s = 0; for (let i = 0; i < n; i++) s += i * ${factor}; return s }
g.sum = work(10);
g.os = typeof require('node:os').tmpdir;
module.exports.ok = true;
`)
  return file
}

describe('runBundle', () => {
  afterEach(() => { delete (globalThis as { __codeCacheTest?: Seen }).__codeCacheTest })

  it('runs the file as Node runs a CommonJS module, writes a cache once asked, and uses it next time', () => {
    const { dir, file, cacheDir } = setup()
    const first = runBundle(file, { cacheDir, tag: 'get' })
    expect(first.status).toBe('none')
    expect(seen()).toMatchObject({ runs: 1, filename: file, dirname: dir, os: 'function', sum: 90 })
    expect(first.save()).toBe(true)
    expect(readdirSync(cacheDir)).toEqual([first.file?.split('/').pop()])

    const second = runBundle(file, { cacheDir, tag: 'get' })
    expect(second.status).toBe('used')
    expect(second.file).toBe(first.file)
    expect(seen()).toMatchObject({ runs: 2, sum: 90 })
  })

  it('never gives a changed bundle the old cache, even at the same length (V8 checks only the length)', () => {
    const dir = temp()
    const cacheDir = join(dir, 'cache')
    const a = runBundle(bundle(dir, 2), { cacheDir, tag: 'get' })
    expect(a.save()).toBe(true)
    const b = runBundle(bundle(dir, 3), { cacheDir, tag: 'get' })
    expect(b.status).toBe('none')
    expect(b.file).not.toBe(a.file)
    expect(seen().sum).toBe(135)
    // saving the new bundle's cache drops the old one of the same command, not other commands'
    const other = runBundle(bundle(dir, 3), { cacheDir, tag: 'seed' })
    expect(other.save()).toBe(true)
    expect(b.save()).toBe(true)
    expect(readdirSync(cacheDir).sort()).toEqual([b.file, other.file].map(f => f?.split('/').pop()).sort())
  })

  it('keeps one cache per set of Node flags (V8 refuses a cache made under other flags)', () => {
    const { file, cacheDir } = setup()
    const plain = runBundle(file, { cacheDir, tag: 'get' })
    expect(plain.save()).toBe(true)
    const saved = process.env.NODE_OPTIONS
    process.env.NODE_OPTIONS = '--max-semi-space-size=32'
    try {
      const flagged = runBundle(file, { cacheDir, tag: 'get' })
      expect(flagged.status).toBe('none')
      expect(flagged.file).not.toBe(plain.file)
      expect(flagged.save()).toBe(true)
      expect(readdirSync(cacheDir)).toHaveLength(2)
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS
      else process.env.NODE_OPTIONS = saved
    }
    expect(runBundle(file, { cacheDir, tag: 'get' }).status).toBe('used')
  })

  it('a garbled cache file is refused by V8: the bundle runs as without one, and save() replaces it', () => {
    const { file, cacheDir } = setup()
    const first = runBundle(file, { cacheDir, tag: 'get' })
    expect(first.save()).toBe(true)
    const good = readFileSync(first.file as string)
    // past the header: V8 would take these bytes and stop the process with a fatal error
    const bad = Buffer.from(good)
    for (let i = 200; i < bad.length; i += 7) bad[i] ^= 0x5a
    writeFileSync(first.file as string, bad)
    const second = runBundle(file, { cacheDir, tag: 'get' })
    expect(second.status).toBe('rejected')
    expect(seen()).toMatchObject({ runs: 2, sum: 90 })
    expect(second.save()).toBe(true)
    expect(runBundle(file, { cacheDir, tag: 'get' }).status).toBe('used')
  })

  it('without a cache dir it is off; a cache dir it cannot write only means no cache', () => {
    const dir = temp()
    const file = bundle(dir)
    const off = runBundle(file, { tag: 'get' })
    expect(off.status).toBe('off')
    expect(off.save()).toBe(false)
    writeFileSync(join(dir, 'not-a-dir'), 'x')
    const blocked = runBundle(file, { cacheDir: join(dir, 'not-a-dir', 'cache'), tag: 'get' })
    expect(blocked.status).toBe('none')
    expect(blocked.save()).toBe(false)
    expect(seen().runs).toBe(2)
  })
})

describe('defaultCodeCacheDir', () => {
  it('follows XDG_CACHE_HOME (absolute only), else ~/.cache; BITSWARM_CODE_CACHE=off turns it off', () => {
    expect(defaultCodeCacheDir({ XDG_CACHE_HOME: '/x/cache' }, '/home/u')).toBe('/x/cache/bitswarm/code')
    expect(defaultCodeCacheDir({ XDG_CACHE_HOME: 'relative' }, '/home/u')).toBe('/home/u/.cache/bitswarm/code')
    expect(defaultCodeCacheDir({}, '/home/u')).toBe('/home/u/.cache/bitswarm/code')
    expect(defaultCodeCacheDir({ BITSWARM_CODE_CACHE: 'off', XDG_CACHE_HOME: '/x' }, '/home/u')).toBeUndefined()
  })
})

describe('the bitswarm command', () => {
  /** `bitswarm tracker`, Ctrl-C once it listens and `ms` have passed since it started; resolves with its exit code */
  async function trackerFor (ms: number, env: NodeJS.ProcessEnv): Promise<number | null> {
    const started = Date.now()
    const child = spawn(process.execPath, [CLI, 'tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] })
    const exited = new Promise<number | null>(resolve => child.once('exit', (code) => { resolve(code) }))
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (!out.includes('"listening"')) return
      child.stdout.removeAllListeners('data')
      setTimeout(() => child.kill('SIGINT'), Math.max(0, ms - (Date.now() - started)))
    })
    return await exited
  }

  /** `bitswarm <args>`, a run that ends by itself */
  async function cli (args: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' })
    return await new Promise(resolve => child.once('exit', (code) => { resolve(code) }))
  }

  it('writes a cache for a command that ran a while, keeps it while it is good, and replaces a bad one', async () => {
    const home = temp()
    const env = { XDG_CACHE_HOME: home }
    const dir = join(home, 'bitswarm', 'code')
    // a run that fails at once (a usage error) writes none; one that did its work does
    expect(await cli(['tracker', '--port', 'nope'], env)).toBe(2)
    expect(() => readdirSync(dir)).toThrow()
    expect(await cli(['--help'], env)).toBe(0)
    expect(readdirSync(dir)).toEqual([expect.stringMatching(/^help-[0-9a-f]{24}-[0-9a-f]{8}\.v8$/)])
    rmSync(dir, { recursive: true })
    expect(await trackerFor(1500, env)).toBe(0)
    const [name] = readdirSync(dir)
    expect(name).toMatch(/^tracker-[0-9a-f]{24}-[0-9a-f]{8}\.v8$/)
    const path = join(dir, name)
    const mtime = statSync(path).mtimeMs
    expect(await trackerFor(1500, env)).toBe(0)
    expect(statSync(path).mtimeMs).toBe(mtime)
    // garbled past V8's own header: V8 alone would stop the process with a fatal error
    const bad = readFileSync(path)
    for (let i = 200; i < bad.length; i += 7) bad[i] ^= 0x5a
    writeFileSync(path, bad)
    expect(await trackerFor(1500, env)).toBe(0)
    expect(readFileSync(path).equals(bad)).toBe(false)
    expect(statSync(path).size).toBeGreaterThan(100_000)
    writeFileSync(path, 'short')
    expect(await trackerFor(1500, env)).toBe(0)
    expect(statSync(path).size).toBeGreaterThan(100_000)
  }, 30_000)

  it('BITSWARM_CODE_CACHE=off writes nothing', async () => {
    const home = temp()
    mkdirSync(join(home, 'bitswarm'))
    expect(await trackerFor(1500, { XDG_CACHE_HOME: home, BITSWARM_CODE_CACHE: 'off' })).toBe(0)
    expect(readdirSync(join(home, 'bitswarm'))).toEqual([])
  }, 30_000)
})
