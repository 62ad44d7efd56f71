import { describe, expect, it } from 'vitest'
import { UsageError } from '../../src/cli/errors.js'
import {
  InvalidDurationError, InvalidRatioError, MAX_DURATION_MS, parseDuration, parseOption, parseRate, parseRatio
} from '../../src/cli/units.js'

const S = 1000
const M = 60 * S
const H = 60 * M
const D = 24 * H

describe('parseDuration', () => {
  it('takes units largest first, decimals, and plain seconds', () => {
    expect(parseDuration('45s')).toBe(45 * S)
    expect(parseDuration('90s')).toBe(90 * S)
    expect(parseDuration('2m')).toBe(2 * M)
    expect(parseDuration('30m')).toBe(30 * M)
    expect(parseDuration('1h30m')).toBe(H + 30 * M)
    expect(parseDuration('1.5h')).toBe(1.5 * H)
    expect(parseDuration('1d2h3m4s')).toBe(D + 2 * H + 3 * M + 4 * S)
    expect(parseDuration('1h30s')).toBe(H + 30 * S)
    expect(parseDuration('90m')).toBe(90 * M) // a part may exceed the next unit up
    expect(parseDuration('90')).toBe(90 * S)
    expect(parseDuration('0.25')).toBe(250)
    expect(parseDuration('0')).toBe(0)
    expect(parseDuration('0s')).toBe(0)
    expect(parseDuration(' 5m\n')).toBe(5 * M)
    expect(parseDuration('365d')).toBe(MAX_DURATION_MS)
  })

  it('gives whole milliseconds', () => {
    expect(parseDuration('0.0004s')).toBe(0)
    expect(parseDuration('1.0006s')).toBe(1001)
  })

  it('rejects garbage, negatives and absurd lengths, each as InvalidDurationError', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty duration/],
      ['   ', /empty duration/],
      ['-5m', /cannot be negative/],
      ['-0', /cannot be negative/],
      ['fast', /not a duration: "fast"/],
      ['5 m', /not a duration/],
      ['1h 30m', /not a duration/],
      ['30m1h', /not a duration/], // units largest first
      ['1m1m', /not a duration/], // each at most once
      ['1h30', /not a duration/], // a number after a unit needs its own unit
      ['5M', /not a duration/], // lowercase only: M could be months
      ['5ms', /not a duration/],
      ['1w', /not a duration/],
      ['.5h', /not a duration/],
      ['5.h', /not a duration/],
      ['1e3', /not a duration/],
      ['0x10', /not a duration/],
      ['Infinity', /not a duration/],
      ['NaN', /not a duration/],
      ['+5s', /not a duration/],
      ['h', /not a duration/],
      ['366d', /longer than a year/],
      ['8761h', /longer than a year/],
      ['9'.repeat(400), /longer than a year/],
      [`${'9'.repeat(400)}s`, /longer than a year/]
    ]
    for (const [text, reason] of cases) {
      let caught: unknown
      try { parseDuration(text) } catch (err) { caught = err }
      expect(caught, text).toBeInstanceOf(InvalidDurationError)
      expect(caught, text).toBeInstanceOf(RangeError)
      expect((caught as Error).message, text).toMatch(reason)
    }
  })
})

describe('parseRatio', () => {
  it('takes decimals >= 0', () => {
    expect(parseRatio('1.5')).toBe(1.5)
    expect(parseRatio('2')).toBe(2)
    expect(parseRatio('0')).toBe(0)
    expect(parseRatio('0.75')).toBe(0.75)
    expect(parseRatio('.5')).toBe(0.5)
    expect(parseRatio(' 3 ')).toBe(3)
  })

  it('rejects garbage, negatives and non-finite numbers, each as InvalidRatioError', () => {
    const cases: Array<[string, RegExp]> = [
      ['-1', /cannot be negative/],
      ['', /not a ratio/],
      ['abc', /not a ratio: "abc"/],
      ['1e3', /not a ratio/],
      ['0x10', /not a ratio/],
      ['Infinity', /not a ratio/],
      ['NaN', /not a ratio/],
      ['1.5x', /not a ratio/],
      ['150%', /not a ratio/],
      ['1.', /not a ratio/],
      ['9'.repeat(400), /too large/]
    ]
    for (const [text, reason] of cases) {
      let caught: unknown
      try { parseRatio(text) } catch (err) { caught = err }
      expect(caught, text).toBeInstanceOf(InvalidRatioError)
      expect((caught as Error).message, text).toMatch(reason)
    }
  })
})

describe('parseRate (throttle.ts), re-exported for the CLI', () => {
  it('is the one rate parser', () => {
    expect(parseRate('4MiB')).toBe(4 * 1024 * 1024)
    expect(() => parseRate('fast')).toThrow(RangeError)
  })
})

describe('parseOption', () => {
  it('is undefined when the option was not given', () => {
    expect(parseOption('seed-time', undefined, parseDuration)).toBeUndefined()
  })

  it('parses a value, and names the flag in a UsageError when it does not parse', () => {
    expect(parseOption('seed-time', '30m', parseDuration)).toBe(30 * M)
    expect(() => parseOption('seed-time', 'soon', parseDuration)).toThrow(UsageError)
    expect(() => parseOption('seed-time', 'soon', parseDuration)).toThrow('--seed-time: not a duration: "soon" (try 90s, 30m, 1h30m or 1.5h)')
    expect(() => parseOption('seed-ratio', '-1', parseRatio)).toThrow('--seed-ratio: a ratio cannot be negative: -1')
    expect(() => parseOption('max-download-rate', 'fast', parseRate)).toThrow(/^--max-download-rate: not a rate: fast/)
  })

  it('lets other errors through as they are', () => {
    const boom = new TypeError('boom')
    expect(() => parseOption('x', '1', () => { throw boom })).toThrow(boom)
  })
})
