#!/usr/bin/env node
/**
 * The `bitswarm` command (dist/bitswarm.mjs): runs the command line's bundle (dist/bitswarm.cjs,
 * built from cli/main.ts) through a V8 code cache (see code-cache.ts), so that a run starts
 * with the bytecode an earlier run of the same command compiled.
 *
 * A run without a usable cache writes one: when it ends, or 10 s in if it is still going (a
 * seeder may run for days, and by then V8 may have dropped the bytecode of its start). A run
 * that fails within a second (a usage error, a missing file) writes none: it ran too little of
 * its command to be worth caching.
 */
import { fileURLToPath } from 'node:url'
import { defaultCodeCacheDir, runBundle } from './code-cache.js'

const SAVE_AFTER_MS = 10_000
const MIN_RUN_MS = 1_000

const run = runBundle(fileURLToPath(new URL('./bitswarm.cjs', import.meta.url)), { cacheDir: defaultCodeCacheDir(), tag: process.argv[2] ?? '' })
if (run.status === 'none' || run.status === 'rejected') {
  let saved = false
  const save = (): void => {
    if (saved) return
    saved = true
    run.save()
  }
  setTimeout(save, SAVE_AFTER_MS).unref()
  process.once('exit', (code) => { if (code === 0 || performance.now() >= MIN_RUN_MS) save() })
}
