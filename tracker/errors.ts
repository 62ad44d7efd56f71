/**
 * Errors whose message is safe to send back to a client; anything else is answered with a bare
 * 500 "internal error".
 */

/** A client mistake (400, or 404/405 for the wrong path or method). */
export class BadRequestError extends Error {
  override name = 'BadRequestError'
  readonly status: number
  constructor (message: string, status = 400) {
    super(message)
    this.status = status
  }
}

/** The signed record is valid but not newer than the last one accepted (a replay, or reordered). */
export class StaleRecordError extends BadRequestError {
  override name = 'StaleRecordError'
}

/** A new peer or swarm would exceed a memory limit: 503, the caller may retry later. */
export class TrackerFullError extends Error {
  override name = 'TrackerFullError'
  readonly status = 503
}

/**
 * The announcer's identity or address already holds its share (swarms per peer id, peers per IP):
 * 429, the caller may retry once it left some swarms. Only that caller is refused.
 */
export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError'
  readonly status = 429
}

/** The tracker serves only some manifests (`tracker --allow`, `--allow-file`) and not this one: 403. */
export class NotTrackedError extends BadRequestError {
  override name = 'NotTrackedError'
  constructor (message = 'manifest not tracked here') {
    super(message, 403)
  }
}

/**
 * The peer store cannot answer (a shared store that is down, unreachable or too slow): 503 with
 * the reason; the tracker keeps running and serves again once the store is back.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
  readonly status = 503
}
