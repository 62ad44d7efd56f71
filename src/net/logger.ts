/**
 * libp2p's component logger, free when it is off.
 *
 * Every connection, stream and service asks the node's ComponentLogger for loggers, a few per
 * yamux stream. libp2p's default (@libp2p/logger) builds each from `weald` (a `debug` fork),
 * which matches the name against DEBUG and asks whether stderr is a terminal (an fstat) every
 * time: about 10 ms of a `get`'s CPU before its first byte, and as much on the seed it connects
 * to. Without DEBUG nothing would ever be printed, so the node gets loggers that do nothing;
 * with DEBUG set (`DEBUG='libp2p:*' bitswarm get …`) it keeps libp2p's own.
 */
import type { ComponentLogger, Logger } from '@libp2p/interface'

const nothing = (): void => {}
const silent: Logger = Object.assign(() => {}, { enabled: false, error: nothing, trace: nothing, newScope: (): Logger => silent })
const SILENT: ComponentLogger = { forComponent: () => silent }

/** The `logger` option for createLibp2p: undefined (libp2p's own) when DEBUG is set. */
export function libp2pLogger (env: NodeJS.ProcessEnv = process.env): { logger?: ComponentLogger } {
  return env.DEBUG != null && env.DEBUG !== '' ? {} : { logger: SILENT }
}
