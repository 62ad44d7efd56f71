/**
 * The library's functions for programs (see index.ts): seed a file, get one, run a tracker. Each
 * takes an AbortSignal: aborting stops what it started and rejects with the signal's reason.
 * Events come two ways: `onProgress` (Helia's shape: one callback, a `type` per event) from the
 * first one on, or listeners on the Peer that `seed` returns.
 */
import { Peer, type GetOptions as PeerGetOptions, type PeerEvents, type SeedOptions } from './peer.js'
import type { SwarmStats } from './swarm/swarm.js'
import { createTrackerServer, type TrackerServer, type TrackerServerInit } from '../tracker/server.js'

/** One of the peer's events, as `onProgress` receives it: `{ type, detail }`, typed by `type`. */
export type PeerEvent = {
  [K in Exclude<keyof PeerEvents, 'error'>]: { type: K, detail: PeerEvents[K]['detail'] }
}[Exclude<keyof PeerEvents, 'error'>]

export interface ProgressOptions {
  /** called with every event of the peer (manifest, peer:connect, peer:disconnect, progress, complete) */
  onProgress?: (event: PeerEvent) => void
}

export interface SeedFileOptions extends SeedOptions, ProgressOptions {}

/** `select`: globs over a folder's paths, only those files are fetched (see the README). */
export interface GetOptions extends PeerGetOptions, ProgressOptions {}

export interface GetResult {
  /** the manifest's CID */
  cid: string
  /** where the file is, complete and verified */
  path: string
  bytes: number
  /** the swarm's counters when the file completed */
  stats: SwarmStats
}

export interface TrackerOptions extends TrackerServerInit {
  /** aborting it stops the tracker */
  signal?: AbortSignal
}

const FORWARDED = ['manifest', 'peer:connect', 'peer:disconnect', 'progress', 'complete'] as const satisfies ReadonlyArray<PeerEvent['type']>

function forward (peer: Peer, onProgress: ((event: PeerEvent) => void) | undefined): void {
  if (onProgress == null) return
  for (const type of FORWARDED) {
    peer.addEventListener(type, (evt) => { onProgress({ type, detail: evt.detail } as PeerEvent) })
  }
}

/**
 * Hashes `file` (or reuses its manifest, default `<file>.bitswarm`), writes the manifest and
 * serves the file until `peer.stop()` or the signal aborts. Resolves once the peer runs: its
 * `cid` and `multiaddrs` are what others need.
 */
export async function seed (file: string, options: SeedFileOptions = {}): Promise<Peer> {
  const peer = await Peer.seed(file, options)
  forward(peer, options.onProgress)
  await peer.start()
  return peer
}

/**
 * Fetches the manifest (`target`: a CID, or a manifest file) and downloads the file into
 * `outDir`, resuming what an earlier run left there. Resolves when every piece is on disk and
 * verified, and stops the peer; rejects on a failure that ends the download, or with the
 * signal's reason when it aborts (the part file stays, for a later run). Without an answer it
 * waits for ever: pass a signal (`AbortSignal.timeout(ms)`) to bound it.
 */
export async function get (target: string, outDir: string, options: GetOptions = {}): Promise<GetResult> {
  const peer = await Peer.get(target, outDir, options)
  forward(peer, options.onProgress)
  const signal = options.signal
  const outcome = await new Promise<{ ok: true, result: GetResult } | { ok: false, error: unknown }>((resolve) => {
    const done = (value: { ok: true, result: GetResult } | { ok: false, error: unknown }): void => {
      peer.removeEventListener('complete', onComplete)
      peer.removeEventListener('error', onError)
      signal?.removeEventListener('abort', onAbort)
      resolve(value)
    }
    const onComplete = (evt: PeerEvents['complete']): void => { done({ ok: true, result: { ...evt.detail, stats: peer.stats() } }) }
    const onError = (evt: PeerEvents['error']): void => { done({ ok: false, error: evt.detail }) }
    const onAbort = (): void => { done({ ok: false, error: signal?.reason }) }
    peer.addEventListener('complete', onComplete)
    peer.addEventListener('error', onError)
    signal?.addEventListener('abort', onAbort, { once: true })
    peer.start().catch((error: unknown) => { done({ ok: false, error }) })
  })
  await peer.stop()
  if (!outcome.ok) throw outcome.error
  return outcome.result
}

/**
 * Starts a tracker (HTTP, default 127.0.0.1:8000; `port: 0` for a free one): its `announceUrl`
 * goes in the peers' `trackers`. Runs until `stop()` or the signal aborts. Silent unless given
 * `log`.
 */
export async function createTracker (options: TrackerOptions = {}): Promise<TrackerServer> {
  const { signal, ...init } = options
  signal?.throwIfAborted()
  const server = createTrackerServer({ ...init, log: init.log ?? (() => {}) })
  await server.start()
  if (signal != null) {
    if (signal.aborted) {
      await server.stop()
      throw signal.reason
    }
    signal.addEventListener('abort', () => { void server.stop() }, { once: true })
  }
  return server
}
