/**
 * A bitswarm peer: a libp2p node, the manifest exchange, discovery (trackers, DHT, bootstrap,
 * peer cache) and, once the manifest is known, the swarm. `seed` and `get` are the two ways to
 * make one; `start()` runs it.
 */
import './polyfill.js'
import { access, mkdir, stat } from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { TypedEventEmitter } from 'main-event'
import type { PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { Bitfield } from './bitfield.js'
import { UsageError } from './cli/errors.js'
import type { ChokerInit } from './choker/choker.js'
import { Discovery, type DiscoveryStatus } from './discovery/discovery.js'
import { defaultStateDir, PeerCache } from './discovery/peer-cache.js'
import type { PeerAddress } from './discovery/types.js'
import { fetchManifest, serveManifests } from './manifest/exchange.js'
import { createManifest, parseCid, pieceCount, readManifestFile, writeManifestFile, type Manifest } from './manifest/manifest.js'
import { createNode, fullAddrs, type BitswarmNode } from './node.js'
import { readResume, ResumeWriter, verifyStore } from './storage/resume.js'
import { openDownloadStore, openSeedStore, PART_SUFFIX, StorageError, type PieceStore } from './storage/storage.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Phase } from './stats/reporter.js'
import { emptySources, PEER_SOURCES, Swarm, type PeerSource, type SwarmStats } from './swarm/swarm.js'
import { shortId } from './session/session.js'

export { UsageError }

export interface PeerOptions {
  listen?: string[]
  trackers?: string[]
  /** multiaddrs (with /p2p/<id>) of peers to join the DHT through */
  bootstrap?: string[]
  /** where the peer cache lives (default: defaultStateDir()); false: no cache */
  stateDir?: string | false
  /** ms between peer-exchange messages (default 30_000) */
  pexInterval?: number
  /** ms between DHT lookups while the trackers are down (default 5_000) */
  lookupInterval?: number
  /** provide and look up the manifest on the DHT (default true) */
  dht?: boolean
  choker?: ChokerInit
  log?: (msg: string) => void
  /** tracker retry backoff floor, ms (tests shrink it) */
  trackerMinBackoff?: number
  /** upload cap, bytes/s, all peers together (default: none) */
  maxUploadRate?: number
}

export interface PeerEvents {
  'peer:connect': CustomEvent<{ peerId: string, source: PeerSource }>
  'manifest': CustomEvent<{ cid: string, manifest: Manifest }>
  'complete': CustomEvent<{ cid: string, path: string, bytes: number }>
  'error': CustomEvent<Error>
}

interface SeedPlan { kind: 'seed', manifest: Manifest, bytes: Uint8Array, store: PieceStore, have: Bitfield }
interface GetPlan { kind: 'get', outDir: string, local?: { manifest: Manifest, bytes: Uint8Array } }
type Plan = SeedPlan | GetPlan

/** a leecher with fewer connections than this looks for more */
const WANT_PEERS = 8

/** Until the manifest is known we cannot say how much is left; announce "not done yet". */
const UNKNOWN_LEFT = Number.MAX_SAFE_INTEGER

export class Peer extends TypedEventEmitter<PeerEvents> {
  readonly node: BitswarmNode
  readonly cid: CID
  swarm: Swarm | undefined
  manifest: Manifest | undefined
  private manifestBytes: Uint8Array | undefined
  private readonly discovery: Discovery
  /** every peer any source told us of, with the first source that did */
  private readonly known = new Map<string, { peer: PeerAddress, source: PeerSource }>()
  private readonly log: (msg: string) => void
  private readonly options: PeerOptions
  /** where the manifest was written (seeding) */
  readonly manifestPath: string | undefined
  private readonly plan: Plan
  private fetching = false
  private resume: ResumeWriter | undefined
  private stopped = false
  private readonly abort = new AbortController()

  private constructor (node: BitswarmNode, privateKey: PrivateKey, cid: CID, options: PeerOptions, plan: Plan, manifestPath?: string) {
    super()
    this.node = node
    this.cid = cid
    this.options = options
    this.plan = plan
    this.manifestPath = manifestPath
    this.log = options.log ?? (() => {})
    this.discovery = new Discovery({
      node,
      privateKey,
      cid,
      trackers: options.trackers ?? [],
      bootstrap: options.bootstrap ?? [],
      stateDir: stateDirOf(options),
      getTransfer: () => {
        const s = this.stats()
        return { uploaded: s.uploaded, downloaded: s.downloaded, left: s.left }
      },
      wantPeers: () => this.swarm == null || (!this.swarm.seeding && this.swarm.peerCount < WANT_PEERS),
      lookupInterval: options.lookupInterval,
      dht: options.dht,
      trackerMinBackoff: options.trackerMinBackoff,
      log: this.log
    })
    this.discovery.addEventListener('peers', (evt) => { this.onPeers(evt.detail.peers, evt.detail.source) })
  }

  get peerId (): string {
    return this.node.peerId.toString()
  }

  get multiaddrs (): string[] {
    return fullAddrs(this.node)
  }

  get trackerStatus (): string {
    return this.discovery.status().tracker
  }

  discoveryStatus (): DiscoveryStatus {
    return this.discovery.status()
  }

  get phase (): Phase {
    if (this.swarm == null) return 'manifest'
    return this.swarm.seeding ? 'seeding' : 'downloading'
  }

  stats (): SwarmStats {
    if (this.swarm != null) return this.swarm.stats()
    return { peers: 0, unchoking: 0, unchokedBy: 0, interested: 0, have: 0, pieces: 0, downloaded: 0, uploaded: 0, downloadRate: 0, uploadRate: 0, left: UNKNOWN_LEFT, wasted: 0, hashFailures: 0, sources: emptySources(), downloadedFrom: emptySources(), banned: 0 }
  }

  /**
   * Hashes `file` and writes its manifest; `start()` then serves it. Listeners attached
   * between the two see every event.
   */
  static async seed (file: string, options: PeerOptions & { manifestPath?: string, skipVerify?: boolean } = {}): Promise<Peer> {
    const path = resolve(file)
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => { throw new UsageError(`cannot read ${file}: ${err.code ?? err.message}`) })
    if (!info.isFile()) throw new UsageError(`${file} is not a regular file`)
    const log = options.log ?? (() => {})
    const manifestPath = options.manifestPath != null ? resolve(options.manifestPath) : join(dirname(path), `${basename(path)}.bitswarm`)
    // a manifest made earlier for this file keeps its CID across restarts; the data is checked
    // against it (unless told not to), and only pieces that match are served
    const earlier = await readManifestFile(manifestPath).catch(() => undefined)
    if (earlier != null && earlier.manifest.name === basename(path) && earlier.manifest.length === info.size) {
      const store = await openSeedStore(path, earlier.manifest)
      let have = Bitfield.full(pieceCount(earlier.manifest))
      if (options.skipVerify !== true) {
        have = await verifyStore(store, earlier.manifest).catch(async (err) => { await store.close(); throw err })
        const bad = have.size - have.count()
        if (bad > 0) log(`${file}: ${bad} of ${have.size} pieces do not match ${manifestPath} (the file changed since); serving the other ${have.count()}. Delete the manifest to make a new one.`)
      }
      const privateKey = await generateKeyPair('Ed25519')
      const node = await createNode({ listen: options.listen, privateKey })
      return new Peer(node, privateKey, earlier.cid, options, { kind: 'seed', manifest: earlier.manifest, bytes: earlier.bytes, store, have }, manifestPath)
    }
    const { manifest, bytes, cid } = await createManifest(path)
    const written = await saveManifest(path, manifest.name, bytes, options.manifestPath)
    const store = await openSeedStore(path, manifest)
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createNode({ listen: options.listen, privateKey })
    return new Peer(node, privateKey, cid, options, { kind: 'seed', manifest, bytes, store, have: Bitfield.full(pieceCount(manifest)) }, written)
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
    if ((options.trackers ?? []).length === 0 && (options.bootstrap ?? []).length === 0) {
      const dir = stateDirOf(options)
      const cached = dir == null ? [] : await new PeerCache({ dir }).load()
      if (cached.length === 0) throw new UsageError('no --tracker, no --bootstrap and no peers remembered from earlier runs: nowhere to look for the swarm')
    }
    // a new identity each run: several peers started from one account never share one
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createNode({ listen: options.listen, privateKey })
    return new Peer(node, privateKey, cid, options, { kind: 'get', outDir: resolve(outDir), local })
  }

  async start (): Promise<void> {
    try {
      await this.begin()
      const plan = this.plan
      if (plan.kind === 'seed') {
        await this.startSwarm(plan.manifest, plan.bytes, plan.store, plan.have, true)
      } else if (plan.local != null) {
        await this.download(plan.local.manifest, plan.local.bytes, plan.outDir)
      }
      // with only a CID, discovery's first answers name the peers to ask for the manifest
      await this.discovery.start()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Starts the node and serves the manifest (once we have it). */
  private async begin (): Promise<void> {
    await this.node.start()
    await serveManifests(this.node, (c) => c === this.cid.toString() ? this.manifestBytes : undefined, this.log)
  }

  private onPeers (peers: PeerAddress[], source: PeerSource): void {
    for (const p of peers) if (!this.known.has(p.peerId)) this.known.set(p.peerId, { peer: p, source })
    if (this.swarm != null) this.swarm.addPeers(peers, source)
    else void this.fetchFromKnown()
  }

  /** Asks known peers, one after another, for the manifest; the first that verifies wins. */
  private async fetchFromKnown (): Promise<void> {
    if (this.fetching || this.manifest != null || this.stopped) return
    this.fetching = true
    try {
      for (const { peer: p } of [...this.known.values()]) {
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
          this.log(`manifest from ${shortId(p.peerId)}: ${(err as Error).message}`)
        }
      }
    } finally {
      this.fetching = false
    }
  }

  /**
   * Downloads into `outDir`, resuming what an earlier run left: a complete file already there is
   * verified and seeded; a part file is trusted through its resume record or hashed again.
   */
  private async download (manifest: Manifest, bytes: Uint8Array, outDir: string): Promise<void> {
    const n = pieceCount(manifest)
    const finalPath = join(outDir, manifest.name)
    if (await isFile(finalPath)) {
      const store = await openSeedStore(finalPath, manifest).catch(() => undefined)
      const have = store == null ? undefined : await verifyStore(store, manifest)
      if (store == null || have == null || !have.isComplete()) {
        await store?.close()
        throw new UsageError(`${finalPath} already exists and is not this manifest's file: move it away first`)
      }
      await this.startSwarm(manifest, bytes, store, have, true)
      this.safeDispatchEvent('complete', { detail: { cid: this.cid.toString(), path: finalPath, bytes: manifest.length } })
      return
    }
    const hadPart = await isFile(finalPath + PART_SUFFIX)
    const store = await openDownloadStore(outDir, manifest)
    const partPath = store.partPath as string
    let have = new Bitfield(n)
    if (hadPart) {
      const recorded = await readResume(partPath, this.cid.toString(), manifest)
      have = recorded ?? await verifyStore(store, manifest)
      this.log(`resuming: ${have.count()} of ${n} pieces already here (${recorded != null ? 'resume record' : 'hashed again'})`)
    }
    const resume = new ResumeWriter({ store, cid: this.cid.toString(), have: () => this.swarm?.have ?? have, log: this.log })
    this.resume = resume
    await this.startSwarm(manifest, bytes, store, have, false, (swarm) => {
      swarm.addEventListener('piece', () => { resume.touch() })
      swarm.addEventListener('complete', () => { this.resume = undefined; void resume.done(partPath) })
    })
  }

  private async startSwarm (manifest: Manifest, bytes: Uint8Array, store: PieceStore, have: Bitfield, seeding: boolean, wire?: (swarm: Swarm) => void): Promise<void> {
    this.manifest = manifest
    this.manifestBytes = bytes
    const swarm = new Swarm({
      node: this.node,
      manifest,
      cid: this.cid,
      store,
      have,
      seeding,
      choker: this.options.choker,
      maxUploadRate: this.options.maxUploadRate,
      pexInterval: this.options.pexInterval,
      log: this.log
    })
    swarm.addEventListener('peer:connect', (evt) => {
      const k = this.known.get(evt.detail.peerId)
      if (k != null) this.discovery.remember([k.peer])
      this.safeDispatchEvent('peer:connect', { detail: evt.detail })
    })
    swarm.addEventListener('complete', (evt) => {
      this.discovery.completed()
      this.safeDispatchEvent('complete', { detail: { cid: this.cid.toString(), ...evt.detail } })
    })
    swarm.addEventListener('error', (evt) => { this.safeDispatchEvent('error', { detail: evt.detail }) })
    wire?.(swarm)
    this.swarm = swarm
    this.safeDispatchEvent('manifest', { detail: { cid: this.cid.toString(), manifest } })
    // a download with nothing left (an empty file) completes inside start()
    await swarm.start()
    for (const source of PEER_SOURCES) {
      swarm.addPeers([...this.known.values()].filter(k => k.source === source).map(k => k.peer), source)
    }
  }

  /** Announces `stopped`, closes sessions and the node. Never throws. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    await this.discovery.stop()
    // stop trading and let writes under way land, then record what is on disk for the next run
    await this.swarm?.drain().catch(() => {})
    await this.resume?.flush()
    await this.swarm?.stop().catch(() => {})
    if (this.swarm == null && this.plan.kind === 'seed') await this.plan.store.close()
    await Promise.resolve(this.node.stop()).catch(() => {})
  }
}

function stateDirOf (options: PeerOptions): string | undefined {
  if (options.stateDir === false) return undefined
  return options.stateDir ?? defaultStateDir()
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
