/**
 * Runs the command line's CommonJS bundle (dist/bitswarm.cjs) through a V8 code cache, as Node
 * 22's `module.enableCompileCache()` does for modules (Node 20 has no such switch).
 *
 * Why: a `bitswarm get` spends about a quarter of a second before its first byte, much of it
 * compiling the functions it runs for the first time (V8 compiles each function lazily, on its
 * first call). A code cache made at the end of an earlier run holds their bytecode: in the
 * 1 → 1 benchmark the manifest arrives about 75 ms sooner (README, "Side by side with
 * libtorrent").
 *
 * The cache is an optimisation and never a failure. There is one file per command, bundle and
 * set of Node flags, named by hashes of the bundle's bytes, Node's version and the flags, so
 * that an upgraded bundle or Node never meets an old cache (V8 itself checks only the text's
 * length). Missing, unreadable, garbled (see seal) or refused by V8, the bundle compiles as it
 * would without one, and the cache is written again, once, atomically (`save()`, which never
 * throws).
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import vm from 'node:vm'
import { xdgDir } from '../base-dirs.js'

/** what became of the cache: used; none there (or unreadable); there but V8 refused it; off */
export type CodeCacheStatus = 'used' | 'none' | 'rejected' | 'off'

export interface BundleRun {
  status: CodeCacheStatus
  /** the cache file (undefined when off) */
  file?: string
  /**
   * Writes what V8 has compiled so far (every function run until now, not just the top level)
   * to the cache file, replacing it atomically, and removes the command's caches of other
   * bundles. Returns whether it was written; never throws.
   */
  save: () => boolean
}

export interface RunBundleOptions {
  /** where cache files go; undefined: no cache */
  cacheDir?: string
  /** one cache per tag (the command: get, seed, tracker…), since each runs other code */
  tag: string
}

/**
 * Where the code caches go: $XDG_CACHE_HOME/bitswarm/code, else <home>/.cache/bitswarm/code;
 * undefined (no cache) when BITSWARM_CODE_CACHE=off.
 */
export function defaultCodeCacheDir (env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string | undefined {
  return env.BITSWARM_CODE_CACHE === 'off' ? undefined : join(xdgDir('cache', env, home), 'code')
}

/**
 * Compiles the CommonJS bundle at `file` (with the cache when there is a good one) and runs it
 * as Node runs a CommonJS module: `require`, `module`, `__filename` and `__dirname` are the
 * bundle's own.
 */
export function runBundle (file: string, options: RunBundleOptions): BundleRun {
  const bytes = readFileSync(file)
  // a #! line is no JavaScript inside the function below: keep it as a comment (same length)
  const source = bytes.toString('utf8').replace(/^#!/, '//')
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`
  const tag = options.tag.replace(/[^a-z0-9-]/gi, '').replace(/^-+/, '').slice(0, 32) || 'none'
  // <command>-<bundle and Node>-<flags>.v8: V8 refuses a cache made under other flags, so each
  // set of flags (node --cpu-prof …, NODE_OPTIONS) keeps its own rather than replacing another's
  const bundleKey = createHash('sha1').update(`${process.version} ${process.arch}\n`).update(bytes).digest('hex').slice(0, 24)
  const flagsKey = createHash('sha1').update(`${process.execArgv.join(' ')}\n${process.env.NODE_OPTIONS ?? ''}`).digest('hex').slice(0, 8)
  const cacheFile = options.cacheDir === undefined ? undefined : join(options.cacheDir, `${tag}-${bundleKey}-${flagsKey}.v8`)
  let stored: Buffer | undefined
  if (cacheFile !== undefined) {
    try { stored = readFileSync(cacheFile) } catch {}
  }
  const cachedData = stored === undefined ? undefined : unseal(stored)
  // (no importModuleDynamically: on Node 20 each way of serving import() from a vm script is
  // experimental and warns or needs a flag, so the bundle has none; test/build/bundle.test.ts)
  const script = new vm.Script(wrapped, { filename: file, cachedData })
  const status: CodeCacheStatus = cacheFile === undefined
    ? 'off'
    : stored === undefined ? 'none' : cachedData === undefined || script.cachedDataRejected === true ? 'rejected' : 'used'
  const save = (): boolean => {
    if (cacheFile === undefined) return false
    // several processes may save at once: each writes its own file, the last rename wins
    const tmp = `${cacheFile}.${process.pid}.tmp`
    try {
      const data = seal(script.createCachedData())
      mkdirSync(dirname(cacheFile), { recursive: true })
      writeFileSync(tmp, data, { mode: 0o600 })
      renameSync(tmp, cacheFile)
      // an older bundle's caches will not be used again
      for (const name of readdirSync(dirname(cacheFile))) {
        if (name.startsWith(`${tag}-`) && name.endsWith('.v8') && !name.startsWith(`${tag}-${bundleKey}-`)) rmSync(join(dirname(cacheFile), name), { force: true })
      }
      return true
    } catch {
      try { rmSync(tmp, { force: true }) } catch {}
      return false
    }
  }
  const module = { exports: {} }
  const run = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void
  run(module.exports, createRequire(file), module, file, dirname(file))
  return { status, file: cacheFile, save }
}

/**
 * A cache file is the SHA-1 of V8's data, then the data. V8 checks a cache's version and flags
 * but not its bytes (in release builds): a garbled one stops Node with a fatal error. So a file
 * whose digest does not match never reaches V8.
 */
const DIGEST = 20
function seal (data: Buffer): Buffer {
  return Buffer.concat([createHash('sha1').update(data).digest(), data])
}
function unseal (stored: Buffer): Buffer | undefined {
  if (stored.length <= DIGEST) return undefined
  const data = stored.subarray(DIGEST)
  return createHash('sha1').update(data).digest().equals(stored.subarray(0, DIGEST)) ? data : undefined
}
