/**
 * A mistake in how the library was called (a missing file, an unwritable output directory, no
 * way to find the swarm): the CLI prints it as one line on stderr and exits with code 2.
 */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** `get` was given no tracker and no bootstrap peer, and remembers no peers from earlier runs. */
export class NoSwarmSourcesError extends UsageError {
  override name = 'UsageError'
  constructor () {
    super('no trackers, no bootstrap peers and no peers remembered from earlier runs: nowhere to look for the swarm')
  }
}

/** The output directory cannot be created or written to. */
export class OutputDirError extends UsageError {
  override name = 'UsageError'
  constructor (readonly dir: string, readonly reason: string) {
    super(`cannot write to the output directory ${dir}: ${reason}`)
  }
}

/**
 * The libp2p node given to `seed`/`get` (`libp2p` option) lacks what a peer needs (identify, a
 * kad-dht service under `services.dht` unless `dht: false`), already runs a bitswarm peer, or
 * does not match the `privateKey` given.
 */
export class Libp2pNodeError extends UsageError {
  override name = 'Libp2pNodeError'
}

/**
 * The runtime lacks a global that libp2p v3 calls (Node 20 has no `Promise.withResolvers`): call
 * `installPolyfills()` or import `bitswarm/polyfill` first. The library never patches globals
 * on its own.
 */
export class MissingPolyfillError extends Error {
  override name = 'MissingPolyfillError'
  constructor (readonly missing: string[]) {
    super(`this runtime lacks ${missing.join(', ')}, which libp2p needs (Node 20): call installPolyfills() from 'bitswarm', or import 'bitswarm/polyfill', before starting a peer`)
  }
}

/** `info` of a CID: no peer gave the manifest in time. */
export class ManifestNotFoundError extends Error {
  override name = 'ManifestNotFoundError'
}
