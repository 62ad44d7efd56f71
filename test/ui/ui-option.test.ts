// `--ui [HOST:]PORT` in the command line's words (src/cli/ui-option.ts).
import { describe, expect, it } from 'vitest'
import { isLoopbackHost, parseUiAddress } from '../../src/cli/ui-option.js'

describe('--ui [HOST:]PORT', () => {
  it('takes a port alone (loopback), a host and a port, or an IPv6 address in brackets', () => {
    expect(parseUiAddress('8080')).toEqual({ host: '127.0.0.1', port: 8080 })
    expect(parseUiAddress('0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseUiAddress(':9000')).toEqual({ host: '127.0.0.1', port: 9000 })
    expect(parseUiAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseUiAddress('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 })
    expect(parseUiAddress('localhost:1')).toEqual({ host: 'localhost', port: 1 })
    expect(parseUiAddress('[::1]:8080')).toEqual({ host: '::1', port: 8080 })
  })

  it('refuses what is not [HOST:]PORT', () => {
    for (const bad of ['', 'x', '65536', '-1', '8080a', '1.2.3.4:', '::1:8080', '[::1]', '[nope]:80', 'a b:80', 'host:80:90', 'http://x:80']) {
      expect(() => parseUiAddress(bad), bad).toThrow(/--ui takes \[HOST:\]PORT/)
    }
  })

  it('knows loopback', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true)
    expect(isLoopbackHost('127.8.9.1')).toBe(true)
    expect(isLoopbackHost('::1')).toBe(true)
    expect(isLoopbackHost('localhost')).toBe(true)
    expect(isLoopbackHost('0.0.0.0')).toBe(false)
    expect(isLoopbackHost('192.168.1.2')).toBe(false)
  })
})
