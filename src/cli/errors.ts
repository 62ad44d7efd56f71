/** A mistake in how a command was called: one line on stderr, exit code 2 (defined below the CLI, which the library also throws). */
export { NoSwarmSourcesError, OutputDirError, UsageError } from '../errors.js'
