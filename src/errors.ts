/**
 * A mistake in how the library was called (a missing file, an unwritable output directory, no
 * way to find the swarm): the CLI prints it as one line on stderr and exits with code 2.
 */
export class UsageError extends Error {
  override name = 'UsageError'
}
