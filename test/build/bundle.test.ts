// The CLI bundle must not load what only `bitswarm tracker` needs (the Redis client, prom-client)
// when a peer starts: esbuild hoists an external package's import to the top of the bundle, where
// it runs in every process. Loading the Redis client that way cost every seed and get about
// 0.1 s of CPU at start, and the 1 → 4 swarm benchmark a second of its 6.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { resolve } from 'node:path'

/** the bundle the `bitswarm` command (dist/bitswarm.mjs, see src/cli/bin.ts) runs */
const BUNDLE = resolve('dist/bitswarm.cjs')

describe('the CLI bundle', () => {
  it('imports no tracker-only package at the top (they load when the tracker starts)', () => {
    const text = readFileSync(BUNDLE, 'utf8')
    // (a require at the start of a line runs when the bundle loads; one inside a module's lazy
    // init function is indented)
    const topLevel = text.split('\n').filter(l => /^(import\b.*\bfrom\s+|(var|const|let)\s+\w+\s*=\s*(__toESM\()?require\()["'](redis|@redis\/[^"']+|prom-client)["']/.test(l))
    expect(topLevel).toEqual([])
  })

  it('has no import() but an optional one of a package we do not install (the bundle runs as a vm script, which cannot serve import() on Node 20 without a flag)', () => {
    const text = readFileSync(BUNDLE, 'utf8')
    const code = text.split('\n').filter(l => !/^\s*(\*|\/\/|\/\*)/.test(l)).join('\n')
    const imports = [...code.matchAll(/(?<![\w.$])import\(\s*["'`]([^"'`]+)["'`]/g)].map(m => m[1])
    // @redis/client's digest() loads @node-rs/xxhash if it is there (we never call digest())
    expect(imports).toEqual(['@node-rs/xxhash'])
  })

  it('uses its own URL (import.meta.url, bundled as __bundle_url) only to find the live page\'s files: a package that reads files beside it would look outside itself', () => {
    const text = readFileSync(BUNDLE, 'utf8')
    const uses = text.split('\n').filter(l => l.includes('__bundle_url') && !l.startsWith("'use strict'; var __bundle_url ="))
    expect(uses).toHaveLength(1)
    expect(uses[0]).toContain('new URL(rel, __bundle_url)')
  })

  it('carries the ssdp patch (patches/): its name and version are constants', () => {
    const text = readFileSync(BUNDLE, 'utf8')
    expect(text).toContain('"@achingbrain/ssdp";')
    expect(text).not.toContain('req("../../package.json")')
  })

  it('carries the yamux patch (patches/): npm ci applies it before the bundle is built', () => {
    const text = readFileSync(BUNDLE, 'utf8')
    expect(text).toContain('this.recvWindow - this.recvWindowCapacity < this.recvWindow / 2')
  })
})
