// The polyfills as a side effect, for entry points (the CLI, benchmarks, vitest's setup, a
// program's `import 'bitswarm/polyfill'`): import this module first, before any libp2p code.
// The library itself (src/index.ts) never imports it. See polyfills.ts.
import { installPolyfills } from './polyfills.js'

installPolyfills()
