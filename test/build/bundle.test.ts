// The CLI bundle must not load what only `bitswarm tracker` needs (the Redis client, prom-client)
// when a peer starts: esbuild hoists an external package's import to the top of the bundle, where
// it runs in every process. Loading the Redis client that way cost every seed and get about
// 0.1 s of CPU at start, and the 1 → 4 swarm benchmark a second of its 6.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CLI } from '../e2e/procs.js'

describe('the CLI bundle', () => {
  it('imports no tracker-only package at the top (they load when the tracker starts)', () => {
    const text = readFileSync(CLI, 'utf8')
    const topLevel = text.split('\n').filter(l => /^import\b.*\bfrom\s+["'](redis|@redis\/[^"']+|prom-client)["']/.test(l))
    expect(topLevel).toEqual([])
  })

  it('carries the yamux patch (patches/): npm ci applies it before the bundle is built', () => {
    const text = readFileSync(CLI, 'utf8')
    expect(text).toContain('this.recvWindow - this.recvWindowCapacity < this.recvWindow / 2')
  })
})
