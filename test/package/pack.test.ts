/**
 * The package as a program gets it: `npm pack` (of the built dist/, as `npm test` leaves it),
 * the tarball unpacked into a fresh project inside the repository (so that its dependencies
 * resolve from the repository's node_modules, with no network), imported by name, a TypeScript
 * consumer type-checked with tsc, and the README's example (examples/seed-and-get.mjs) run: it
 * seeds a file and gets it through the API on 127.0.0.1.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const EXAMPLE = join(REPO, 'examples', 'seed-and-get.mjs')
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
const run = promisify(execFile)
/** the live page's files, copied beside the bundle by the build */
const UI_FILES = ['dist/ui/index.html', 'dist/ui/app.js', 'dist/ui/style.css']

/** Every child this suite starts, so that none outlives it. */
const children = new Set<ChildProcess>()

/** Runs `node <args>` in `cwd`; resolves with its exit code and output, kills it after `timeout` ms. */
async function node (args: string[], cwd: string, timeout: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeout)
    child.on('error', (err) => { clearTimeout(timer); children.delete(child); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); children.delete(child); resolve({ code, stdout, stderr }) })
  })
}

const CONSUMER_TS = `import { generateKeyPair } from '@libp2p/crypto/keys'
import { createLibp2p } from 'libp2p'
import {
  createManifest, createTracker, get, installPolyfills, libp2pDefaults, Libp2pNodeError, MissingPolyfillError,
  Peer, seed, type GetResult, type PeerEvent, type PeerProgress, type TrackerServer
} from 'bitswarm'
import 'bitswarm/polyfill'

installPolyfills()

export async function main (file: string, out: string, signal: AbortSignal): Promise<GetResult> {
  const tracker: TrackerServer = await createTracker({ port: 0, signal })
  // a node the program configured, shared with the peer
  const privateKey = await generateKeyPair('Ed25519')
  const libp2p = await createLibp2p(libp2pDefaults({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] }))
  const seeder: Peer = await seed(file, { libp2p, privateKey, trackers: [tracker.announceUrl], signal })
  seeder.addEventListener('peer:disconnect', (evt) => { const id: string = evt.detail.peerId; void id })
  const { cid } = await createManifest(file, { signal })
  const seen: PeerProgress[] = []
  const result = await get(cid.toString(), out, {
    trackers: [tracker.announceUrl],
    signal,
    onProgress: (event: PeerEvent) => {
      if (event.type === 'progress') seen.push(event.detail)
      // @ts-expect-error a progress event has no path
      if (event.type === 'progress') void event.detail.path
      if (event.type === 'complete') { const path: string = event.detail.path; void path }
    }
  })
  const bytes: number = result.bytes
  const left: number = result.stats.left
  void bytes; void left
  // @ts-expect-error seed takes a path
  void seed(42)
  // @ts-expect-error the result is typed, not any
  void result.nothing
  await seeder.stop()
  await libp2p.stop()
  await tracker.stop()
  return result
}

export function describeError (err: unknown): string {
  if (err instanceof Libp2pNodeError) return 'node: ' + err.message
  if (err instanceof MissingPolyfillError) return 'runtime lacks ' + err.missing.join(', ')
  return String(err)
}
`

/** Importing the package patches no global; without the polyfill on Node 20 a peer refuses clearly. */
const NO_GLOBALS_MJS = `const before = typeof Promise.withResolvers
const lib = await import('bitswarm')
if (typeof Promise.withResolvers !== before) throw new Error('importing bitswarm patched Promise')
for (const name of ['seed', 'get', 'createTracker', 'createManifest', 'installPolyfills', 'libp2pDefaults']) {
  if (typeof lib[name] !== 'function') throw new Error('missing export ' + name)
}
if (before !== 'function') {
  const err = await lib.seed('consumer.mjs').then(() => undefined, (e) => e)
  if (!(err instanceof lib.MissingPolyfillError)) throw new Error('expected MissingPolyfillError, got ' + err)
  lib.installPolyfills()
  if (typeof Promise.withResolvers !== 'function') throw new Error('installPolyfills did not install')
}
console.log('ok ' + before)
`

describe('the packed package', () => {
  let packDir: string
  let consumer: string
  let files: string[] = []

  beforeAll(async () => {
    packDir = await mkdtemp(join(tmpdir(), 'bitswarm-pack-'))
    // inside the repository: the tarball's dependencies resolve from its node_modules
    consumer = join(REPO, `.tmp-consumer-${randomBytes(4).toString('hex')}`)
    // dist/ is built (npm test builds first): no second build here
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: REPO })
    const info = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
    files = info[0].files.map(f => f.path)
    const target = join(consumer, 'node_modules', 'bitswarm')
    await mkdir(target, { recursive: true })
    await run('tar', ['-xzf', join(packDir, info[0].filename), '-C', target, '--strip-components=1'])
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2024'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        // yamux's types and @libp2p/utils' disagree on uint8arraylist's version (see STACK.md)
        skipLibCheck: true,
        types: ['node'],
        // the README's example is checked against the declarations too
        allowJs: true,
        checkJs: true
      },
      files: ['consumer.ts', 'consumer.mjs']
    }))
    await writeFile(join(consumer, 'consumer.ts'), CONSUMER_TS)
    await copyFile(EXAMPLE, join(consumer, 'consumer.mjs'))
    await writeFile(join(consumer, 'no-globals.mjs'), NO_GLOBALS_MJS)
  }, 60_000)

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL')
    await rm(consumer, { recursive: true, force: true })
    await rm(packDir, { recursive: true, force: true })
  })

  it('holds the library, its declarations and the CLI, and nothing else', () => {
    expect(files).toEqual(expect.arrayContaining([
      'package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/polyfill.js',
      'dist/tracker/server.js', 'dist/tracker/server.d.ts', 'dist/bitswarm.mjs', 'dist/bitswarm.cjs', ...UI_FILES
    ]))
    const unwanted = files.filter(f => !/^dist\/(src|tracker)\/.*\.(js|d\.ts)$/.test(f) && !['package.json', 'README.md', 'LICENSE', 'dist/bitswarm.mjs', 'dist/bitswarm.cjs', ...UI_FILES].includes(f))
    expect(unwanted).toEqual([])
    // the CLI and its live page are in the bundle
    expect(files.filter(f => f.startsWith('dist/src/cli/') || f.startsWith('dist/src/ui/'))).toEqual([])
  })

  it('imports by name without patching globals', async () => {
    const r = await node(['no-globals.mjs'], consumer, 30_000)
    expect(r.stderr).toBe('')
    // on Node 20 it also saw seed() refuse to start without the polyfill
    expect(r.stdout.trim()).toBe(Number(process.versions.node.split('.')[0]) >= 22 ? 'ok function' : 'ok undefined')
    expect(r.code).toBe(0)
  })

  it('type-checks a TypeScript consumer and the README example with tsc', async () => {
    const r = await node([TSC, '-p', 'tsconfig.json'], consumer, 60_000)
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  }, 60_000)

  it('runs the README example: a seed and a get through the API', async () => {
    const r = await node(['consumer.mjs'], consumer, 60_000)
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/connected to 12D3KooW\S+ \(bootstrap\)/)
    expect(r.stdout).toMatch(/hello\.bin: 1000000 bytes, identical/)
    expect(r.code).toBe(0)
  }, 60_000)

  it('keeps its command line', async () => {
    const r = await node([join(consumer, 'node_modules', 'bitswarm', 'dist', 'bitswarm.mjs'), '--help'], consumer, 30_000)
    expect(r.stdout).toContain('bitswarm seed <file | folder>')
    expect(r.code).toBe(0)
  })

  it("serves its live page from the installed bundle (--ui finds the page's files)", async () => {
    await writeFile(join(consumer, 'page.bin'), randomBytes(100_000))
    const child = spawn(process.execPath, [join(consumer, 'node_modules', 'bitswarm', 'dist', 'bitswarm.mjs'), 'seed', 'page.bin', '--no-dht', '--listen', '/ip4/127.0.0.1/tcp/0', '--ui', '127.0.0.1:0', '--json'],
      { cwd: consumer, env: { ...process.env, BITSWARM_STATE_DIR: join(consumer, '.state') }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    try {
      let stdout = ''
      let stderr = ''
      child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no ui event within 30 s: ${stdout} ${stderr}`)) }, 30_000)
        child.stdout.on('data', (b: Buffer) => {
          stdout += b.toString()
          const m = /\{"event":"ui"[^\n]*\}/.exec(stdout)
          if (m != null) { clearTimeout(timer); resolve(String((JSON.parse(m[0]) as { url: string }).url)) }
        })
        child.once('close', () => { clearTimeout(timer); reject(new Error(`exited before the ui event: ${stdout} ${stderr}`)) })
      })
      for (const [path, type] of [['', 'text/html'], ['app.js', 'text/javascript'], ['style.css', 'text/css']]) {
        const res = await fetch(new URL(path, url))
        expect(res.status, path).toBe(200)
        expect(res.headers.get('content-type'), path).toContain(type)
      }
    } finally {
      child.kill('SIGKILL')
      children.delete(child)
    }
  }, 60_000)

  it('the README shows the example as it is', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8')
    const example = await readFile(EXAMPLE, 'utf8')
    // the first js block of the section is the example, byte for byte
    const section = readme.slice(readme.indexOf('## Use it from a program'))
    const block = /```js\n([\s\S]*?)```\n/.exec(section)?.[1]
    expect(block).toBe(example)
  })
})
