/**
 * Exponential backoff: the delay after the `failures`-th failure in a row, doubling from `base`
 * and capped at `max` (the exponent is bounded too, so a long run of failures cannot overflow).
 */
export function backoffDelay (failures: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(Math.max(failures - 1, 0), 30))
}
