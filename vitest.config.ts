import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the slow fault suites run with `npm run test:faults`, the slow attack suites with
    // `npm run test:hostile`, the network-namespace suites (root only) with `npm run test:netns`
    exclude: [
      ...(process.env.BITSWARM_FAULTS === '1' ? [] : ['test/faults/**']),
      ...(process.env.BITSWARM_HOSTILE === '1' ? [] : ['test/hostile/**']),
      ...(process.env.BITSWARM_NETNS === '1' ? [] : ['test/netns/**'])
    ],
    // libp2p v3 calls Promise.withResolvers, which Node 20 lacks
    setupFiles: ['./src/polyfill.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // the machine has 2 cores: process-spawning suites must not starve each other
    maxWorkers: 2,
    // no test may read or write the user's own peer cache
    env: { BITSWARM_STATE_DIR: join(tmpdir(), `bitswarm-test-state-${process.pid}`) }
  }
})
