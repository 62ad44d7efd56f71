/**
 * A bitswarm peer: a libp2p node, the manifest exchange, tracker announcers and, once the
 * manifest is known, the swarm. `seed` and `get` are the two ways to start one.
 */
import './polyfill.js'
import { access, mkdir, stat } from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { TypedEventEmitter } from 'main-event'
import type { Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { Bitfield } from './bitfield.js'
import { UsageError } from './cli/errors.js'
import type { ChokerInit } from './choker/choker.js'
import { TrackerAnnouncer, type AnnouncedPeer } from './discovery/tracker-client.js'
import { fetchManifest, serveManifests } from './manifest/exchange.js'
import { createManifest, parseCid, pieceCount, readManifestFile, writeManifestFile, type Manifest } from './manifest/manifest.js'
import { announceAddrs, createNode, fullAddrs } from './node.js'
import { openDownloadStore, openSeedStore, StorageError, type PieceStore } from './storage/storage.js'
import type { Phase } from './stats/reporter.js'
import { Swarm, type SwarmStats } from './swarm/swarm.js'

export { UsageError }

export interface PeerOptions {
  listen?: string[]
  trackers?: string[]
  choker?: ChokerInit
  log?: (msg: string) => void
  /** tracker retry backoff floor, ms (tests shrink it) */
  trackerMinBackoff?: number
}

export interface PeerEvents {
  'manifest': CustomEvent<{ cid: string, manifest: Manifest }>
  'complete': CustomEvent<{ cid: string, path: string, bytes: number }>
  'error': CustomEvent<Error>
}

interface SeedPlan { kind: 'seed', manifest: Manifest, bytes: Uint8Array, store: PieceStore }
interface GetPlan { kind: 'get', outDir: string, local?: { manifest: Manifest, bytes: Uint8Array } }
type Plan = SeedPlan | GetPlan

/** Until the manifest is known we cannot say how much is left; announce "not done yet". */
const UNKNOWN_LEFT = Number.MAX_SAFE_INTEGER

export class Peer extends TypedEventEmitter<PeerEvents> {
  readonly node: Libp2p
  readonly cid: CID
  swarm: Swarm | undefined
  manifest: Manifest | undefined
  private manifestBytes: Uint8Array | undefined
  private readonly announcers: TrackerAnnouncer[] = []
  private readonly known = new Map<string, AnnouncedPeer>()
  private readonly log: (msg: string) => void
  private readonly options: PeerOptions
  /** where the manifest was written (seeding) */
  readonly manifestPath: string | undefined
  private readonly plan: Plan
  private fetching = false
  private stopped = false
  private readonly abort = new AbortController()

  private constructor (node: Libp2p, cid: CID, options: PeerOptions, plan: Plan, manifestPath?: string) {
    super()
    this.node = node
    this.cid = cid
    this.options = options
    this.plan = plan
    this.manifestPath = manifestPath
    this.log = options.log ?? (() => {})
  }

  get peerId (): string {
    return this.node.peerId.toString()
  }

  get multiaddrs (): string[] {
    return fullAddrs(this.node)
  }

  get trackerStatus (): string {
    if (this.announcers.length === 0) return 'none'
    return this.announcers.map(a => a.status).join(',')
  }

  get phase (): Phase {
    if (this.swarm == null) return 'manifest'
    return this.swarm.seeding ? 'seeding' : 'downloading'
  }

  stats (): SwarmStats {
    if (this.swarm != null) return this.swarm.stats()
    return { peers: 0, unchoking: 0, unchokedBy: 0, interested: 0, have: 0, pieces: 0, downloaded: 0, uploaded: 0, downloadRate: 0, uploadRate: 0, left: UNKNOWN_LEFT, wasted: 0, hashFailures: 0 }
  }

  /**
   * Hashes `file` and writes its manifest; `start()` then serves it. Listeners attached
   * between the two see every event.
   */
  static async seed (file: string, options: PeerOptions & { manifestPath?: string } = {}): Promise<Peer> {
    const path = resolve(file)
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => { throw new UsageError(`cannot read ${file}: ${err.code ?? err.message}`) })
    if (!info.isFile()) throw new UsageError(`${file} is not a regular file`)
    const { manifest, bytes, cid } = await createManifest(path)
    const manifestPath = await saveManifest(path, manifest.name, bytes, options.manifestPath)
    const store = await openSeedStore(path, manifest)
    const node = await createNode({ listen: options.listen })
    return new Peer(node, cid, options, { kind: 'seed', manifest, bytes, store }, manifestPath)
  }

  /**
   * Checks the target (a manifest file or a CID) and `outDir`; `start()` then fetches the
   * manifest if need be and downloads.
   */
  static async get (target: string, outDir: string, options: PeerOptions = {}): Promise<Peer> {
    let cid: CID
    let local: { manifest: Manifest, bytes: Uint8Array } | undefined
    if (await isFile(target)) {
      const m = await readManifestFile(target)
      cid = m.cid
      local = m
    } else {
      try {
        cid = parseCid(target)
      } catch {
        throw new UsageError(`${target} is neither a manifest file nor a manifest CID`)
      }
    }
    await checkWritableDir(outDir)
    if ((options.trackers ?? []).length === 0) throw new UsageError('no --tracker given: a peer needs somewhere to find others')
    const node = await createNode({ listen: options.listen })
    return new Peer(node, cid, options, { kind: 'get', outDir: resolve(outDir), local })
  }

  async start (): Promise<void> {
    try {
      await this.begin()
      const plan = this.plan
      if (plan.kind === 'seed') {
        await this.startSwarm(plan.manifest, plan.bytes, plan.store, true)
      } else if (plan.local != null) {
        await this.download(plan.local.manifest, plan.local.bytes, plan.outDir)
      } else {
        // with only a CID, announce first: the tracker's answer names peers to ask for the manifest
        this.startAnnouncing()
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Starts the node, serves the manifest, announces to every tracker. */
  private async begin (): Promise<void> {
    await this.node.start()
    await serveManifests(this.node, (c) => c === this.cid.toString() ? this.manifestBytes : undefined, this.log)
    for (const url of this.options.trackers ?? []) {
      const a = new TrackerAnnouncer({
        announceUrl: url,
        manifest: this.cid.toString(),
        peerId: this.peerId,
        getMultiaddrs: () => announceAddrs(this.node),
        getTransfer: () => {
          const s = this.stats()
          return { uploaded: s.uploaded, downloaded: s.downloaded, left: this.swarm == null ? UNKNOWN_LEFT : s.left }
        },
        minBackoff: this.options.trackerMinBackoff,
        log: this.log
      })
      a.addEventListener('peers', (evt) => { this.onPeers(evt.detail) })
      this.announcers.push(a)
    }
  }

  private startAnnouncing (): void {
    for (const a of this.announcers) if (a.status === 'pending') a.start()
  }

  private onPeers (peers: AnnouncedPeer[]): void {
    for (const p of peers) this.known.set(p.peerId, p)
    if (this.swarm != null) this.swarm.addPeers(peers)
    else void this.fetchFromKnown()
  }

  /** Asks known peers, one after another, for the manifest; the first that verifies wins. */
  private async fetchFromKnown (): Promise<void> {
    if (this.fetching || this.manifest != null || this.stopped) return
    this.fetching = true
    try {
      for (const p of [...this.known.values()]) {
        if (this.manifest != null || this.stopped) return
        try {
          const id = peerIdFromString(p.peerId)
          await this.node.peerStore.merge(id, { multiaddrs: p.multiaddrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } }) })
          const { manifest, bytes } = await fetchManifest(this.node, id, this.cid, { signal: this.abort.signal })
          if (this.manifest != null || this.stopped) return
          await this.download(manifest, bytes, (this.plan as GetPlan).outDir)
          return
        } catch (err) {
          if (err instanceof StorageError) {
            this.safeDispatchEvent('error', { detail: err })
            return
          }
          this.log(`manifest from ${p.peerId.slice(-8)}: ${(err as Error).message}`)
        }
      }
    } finally {
      this.fetching = false
    }
  }

  private async download (manifest: Manifest, bytes: Uint8Array, outDir: string): Promise<void> {
    const store = await openDownloadStore(outDir, manifest)
    await this.startSwarm(manifest, bytes, store, false)
  }

  private async startSwarm (manifest: Manifest, bytes: Uint8Array, store: PieceStore, seeding: boolean): Promise<void> {
    this.manifest = manifest
    this.manifestBytes = bytes
    const swarm = new Swarm({
      node: this.node,
      manifest,
      cid: this.cid,
      store,
      have: seeding ? Bitfield.full(pieceCount(manifest)) : undefined,
      seeding,
      choker: this.options.choker,
      log: this.log
    })
    swarm.addEventListener('complete', (evt) => {
      for (const a of this.announcers) a.completed()
      this.safeDispatchEvent('complete', { detail: { cid: this.cid.toString(), ...evt.detail } })
    })
    swarm.addEventListener('error', (evt) => { this.safeDispatchEvent('error', { detail: evt.detail }) })
    this.swarm = swarm
    this.safeDispatchEvent('manifest', { detail: { cid: this.cid.toString(), manifest } })
    // a download with nothing left (an empty file) completes inside start()
    await swarm.start()
    swarm.addPeers([...this.known.values()])
    this.startAnnouncing()
  }

  /** Announces `stopped`, closes sessions and the node. Never throws. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    await Promise.all(this.announcers.map(async a => { await a.stop() }))
    await this.swarm?.stop().catch(() => {})
    if (this.swarm == null && this.plan.kind === 'seed') await this.plan.store.close()
    await Promise.resolve(this.node.stop()).catch(() => {})
  }
}

async function isFile (path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

async function checkWritableDir (dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true })
    await access(dir, fsConstants.W_OK)
  } catch (err) {
    throw new UsageError(`cannot write to --out ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Writes the manifest next to the file, or in the working directory if that is read-only. */
async function saveManifest (filePath: string, name: string, bytes: Uint8Array, explicit?: string): Promise<string> {
  const candidates = explicit != null ? [resolve(explicit)] : [join(dirname(filePath), `${basename(filePath)}.bitswarm`), resolve(`${name}.bitswarm`)]
  let last: Error | undefined
  for (const c of candidates) {
    try {
      await writeManifestFile(c, bytes)
      return c
    } catch (err) {
      last = err as Error
    }
  }
  throw new UsageError(`cannot write the manifest: ${last?.message ?? 'unknown error'}`)
}
