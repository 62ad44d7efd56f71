/**
 * The command line's quantities, from text: rates (`--max-upload-rate 4MiB`, parsed by
 * throttle.ts's parseRate, re-exported here so the CLI has one place for units), durations
 * (`--seed-time 30m`, `--timeout 90s`) and ratios (`--seed-ratio 1.5`). Each parser throws a
 * RangeError (a named subclass) that says what is wrong without naming the flag; parseOption adds
 * the flag and makes it a UsageError.
 */
import { UsageError } from './errors.js'

export { parseRate } from '../throttle.js'

export class InvalidDurationError extends RangeError {
  override name = 'InvalidDurationError'
}

export class InvalidRatioError extends RangeError {
  override name = 'InvalidRatioError'
}

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/**
 * The longest duration taken: a year. Note that it is above setTimeout's limit (2^31 - 1 ms,
 * about 24.8 days, beyond which a timer fires at once): check elapsed time on a tick, or clamp,
 * rather than arming one timer for the whole of a long duration.
 */
export const MAX_DURATION_MS = 365 * DAY

const NUMBER = String.raw`\d+(?:\.\d+)?`
// units largest first, each at most once: 1d2h3m4s, 1h30m, 1.5h, 45s; no unit: seconds
const DURATION = new RegExp(`^(?:(${NUMBER})d)?(?:(${NUMBER})h)?(?:(${NUMBER})m)?(?:(${NUMBER})s)?$`)
const PLAIN = new RegExp(`^${NUMBER}$`)

/**
 * Milliseconds (a whole number, 0..MAX_DURATION_MS) in `text`: "90" or "90s", "2m", "1h30m",
 * "1.5h", "1d12h". Units are d, h, m, s in lowercase, largest first, each at most once, with no
 * spaces between; a number alone is seconds.
 */
export function parseDuration (text: string): number {
  const t = text.trim()
  if (t === '') throw new InvalidDurationError('empty duration (try 90s, 30m, 1h30m or 1.5h)')
  if (t.startsWith('-')) throw new InvalidDurationError(`a duration cannot be negative: ${t}`)
  let ms: number
  if (PLAIN.test(t)) {
    ms = Number(t) * SECOND
  } else {
    const m = DURATION.exec(t)
    // the regex also matches "" (every part optional): t is not empty here
    if (m == null) throw new InvalidDurationError(`not a duration: ${JSON.stringify(t)} (try 90s, 30m, 1h30m or 1.5h)`)
    const [, d, h, min, s] = m
    ms = num(d) * DAY + num(h) * HOUR + num(min) * MINUTE + num(s) * SECOND
  }
  // a long run of digits is Infinity here, and fails the same test
  if (!(ms <= MAX_DURATION_MS)) throw new InvalidDurationError(`duration ${t} is longer than a year (365d)`)
  return Math.round(ms)
}

function num (part: string | undefined): number {
  return part === undefined ? 0 : Number(part)
}

/** A ratio (uploaded / downloaded) in `text`: a decimal number >= 0, as "1.5", "2" or "0.75". */
export function parseRatio (text: string): number {
  const t = text.trim()
  if (t.startsWith('-')) throw new InvalidRatioError(`a ratio cannot be negative: ${t}`)
  // decimals only: no "1e3", "0x10", "Infinity" or "" (which Number() would take)
  if (!/^(?:\d+(?:\.\d+)?|\.\d+)$/.test(t)) throw new InvalidRatioError(`not a ratio: ${JSON.stringify(t)} (try 1, 1.5 or 0.5)`)
  const r = Number(t)
  if (!Number.isFinite(r)) throw new InvalidRatioError(`ratio ${t} is too large`)
  return r
}

/**
 * `parse(value)` for option `--flag`, or undefined when the option was not given; a parse error
 * becomes a UsageError that names the flag ("--seed-time: not a duration: ...").
 */
export function parseOption<T> (flag: string, value: string | undefined, parse: (text: string) => T): T | undefined {
  if (value === undefined) return undefined
  try {
    return parse(value)
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(`--${flag}: ${err.message}`)
    throw err
  }
}
