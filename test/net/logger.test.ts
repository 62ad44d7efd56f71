// libp2p's logger is silent (and cheap) unless DEBUG asks for it (src/net/logger.ts).
import { describe, expect, it } from 'vitest'
import { libp2pLogger } from '../../src/net/logger.js'

describe('libp2pLogger', () => {
  it('without DEBUG: loggers that do nothing, at every scope', () => {
    const { logger } = libp2pLogger({})
    expect(logger).toBeDefined()
    const log = logger!.forComponent('libp2p:yamux')
    expect(log.enabled).toBe(false)
    expect(() => { log('x %s', 1); log.error('e'); log.trace('t') }).not.toThrow()
    const scoped = log.newScope('stream')
    expect(scoped.enabled).toBe(false)
    expect(() => { scoped('y') }).not.toThrow()
    expect(libp2pLogger({ DEBUG: '' }).logger).toBeDefined()
  })

  it('with DEBUG set: no logger option, so libp2p keeps its own', () => {
    expect(libp2pLogger({ DEBUG: 'libp2p:*' })).toEqual({})
  })
})
