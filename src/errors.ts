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
