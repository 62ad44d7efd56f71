/**
 * The room most swarm tests run in: a temp dir, optionally a real tracker on 127.0.0.1:0, base
 * peer options for loopback, and cleanup of every peer and attacker the test started — all torn
 * down after each test, whatever happened.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach } from 'vitest'
import type { Peer, PeerOptions } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { Attacker, type AttackerInit } from './attacker.js'
import { LOOPBACK } from './peers.js'

/** nothing listens on the discard port: for peers that must find each other another way */
export const DEAD_TRACKER = 'http://127.0.0.1:9/announce'

export interface Testbed {
  /** this test's temp dir */
  dir: string
  /** the tracker (with `tracker: true`) */
  tracker: TrackerServer
  /** loopback, fast rechokes, no peer cache; the tracker's URL (or DEAD_TRACKER) */
  base: PeerOptions
  /** Remembers `p` for cleanup and starts it. */
  start: (p: Peer | Promise<Peer>) => Promise<Peer>
  /** Remembers a peer for cleanup without starting it. */
  keep: (p: Peer) => Peer
  /** Runs `fn` at cleanup, before the peers stop (attackers, socket floods, scripts). */
  defer: (fn: () => unknown) => void
  /** A hostile node (test/helpers/attacker.ts), stopped at cleanup. */
  attacker: (init?: AttackerInit) => Promise<Attacker>
}

export interface TestbedInit {
  /** a real tracker; else the peers get DEAD_TRACKER */
  tracker?: boolean
  /** more base options (DHT off, backoff, …) */
  base?: PeerOptions
}

/** Registers beforeEach/afterEach for a describe block; read the fields inside tests only. */
export function useTestbed (prefix: string, init: TestbedInit = {}): Testbed {
  const peers: Peer[] = []
  const deferred: Array<() => unknown> = []
  const bed: Testbed = {
    dir: '',
    tracker: undefined as unknown as TrackerServer,
    base: {},
    start: async (p) => {
      const peer = bed.keep(await p)
      await peer.start()
      return peer
    },
    keep: (p) => { peers.push(p); return p },
    defer: (fn) => { deferred.push(fn) },
    attacker: async (attackerInit) => {
      const a = await Attacker.create(attackerInit)
      bed.defer(async () => { await a.stop() })
      return a
    }
  }

  beforeEach(async () => {
    bed.dir = await mkdtemp(join(tmpdir(), `bitswarm-${prefix}-`))
    let trackers = [DEAD_TRACKER]
    if (init.tracker === true) {
      bed.tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 1, minInterval: 1, statsInterval: 0, log: () => {} })
      await bed.tracker.start()
      trackers = [bed.tracker.announceUrl]
    }
    bed.base = { listen: LOOPBACK, trackers, stateDir: false, choker: { rechokeInterval: 500, optimisticInterval: 1000 }, ...init.base }
  })

  afterEach(async () => {
    for (const fn of deferred.splice(0).reverse()) await fn()
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    if (init.tracker === true) await bed.tracker.stop()
    await rm(bed.dir, { recursive: true, force: true })
  })

  return bed
}

/** `p`, or an error saying what was going on if it takes longer than `ms`. */
export async function within<T> (p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(what())) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}
