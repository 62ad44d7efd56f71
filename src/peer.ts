/**
 * A bitswarm peer: a libp2p node, the manifest exchange, discovery (trackers, DHT, bootstrap,
 * peer cache) and, once the manifest is known, the swarm. `seed` and `get` are the two ways to
 * make one; `start()` runs it.
 */
import './polyfill.js'
import { access, mkdir, stat } from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { basename, dirname, join, parse as parsePath, resolve, sep } from 'node:path'
import { TypedEventEmitter } from 'main-event'
import type { PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { Bitfield } from './bitfield.js'
import { NoSwarmSourcesError, OutputDirError, UsageError } from './errors.js'
import type { ChokerInit } from './choker/choker.js'
import { Discovery, type DiscoveryStatus } from './discovery/discovery.js'
import { DialGuard } from './discovery/dial-guard.js'
import { dialGuarded } from './discovery/guarded-dial.js'
import { defaultStateDir, PeerCache } from './discovery/peer-cache.js'
import type { PeerAddress } from './discovery/types.js'
import { fetchManifest, serveManifests } from './exchange/exchange.js'
import { ManifestRace } from './exchange/race.js'
import { parseCid, pieceCount, type Manifest } from './manifest/manifest.js'
import { createNode, fullAddrs, type BitswarmNode } from './node.js'
import { createManifest, readManifestFile, writeManifestFile } from './storage/manifest-file.js'
import { readResume, ResumeWriter, verifyStore } from './storage/resume.js'
import { openDownloadStore, openSeedStore, type PieceStore } from './storage/storage.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { emptySources, PEER_SOURCES, Swarm, type PeerSource, type SwarmStats } from './swarm/swarm.js'

/** Where a peer is: fetching the manifest, downloading pieces, or seeding. */
export type Phase = 'manifest' | 'downloading' | 'seeding'

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
/** peers remembered from discovery (the oldest go first): fake tracker entries must not grow it without end */
const MAX_KNOWN = 1_000
/**
 * The manifest is asked of this many peers at once (more, up to 32, while tarpits hold their
 * places: see ManifestRace); each has MANIFEST_PATIENCE ms to connect and
 * as long again to start answering (a tarpit is dropped within seconds), and 30 s in all (8 MiB
 * over a slow link).
 */
const MANIFEST_PARALLEL = 8
const MANIFEST_PATIENCE = 4_000
const MANIFEST_DEADLINE = 30_000

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
  /** the manifest race, while we look for the manifest */
  private race: ManifestRace<{ manifest: Manifest, bytes: Uint8Array, from: PeerAddress }> | undefined
  /** the peer whose manifest we took: the swarm dials it first (it has at least the manifest) */
  private manifestFrom: PeerAddress | undefined
  /** which addresses we were told of may be dialled: shared by the manifest race and the swarm */
  private readonly dialGuard = new DialGuard()
  private resume: ResumeWriter | undefined
  private stopped = false

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
      const node = await createNode({ listen: options.listen, privateKey, log: options.log })
      return new Peer(node, privateKey, earlier.cid, options, { kind: 'seed', manifest: earlier.manifest, bytes: earlier.bytes, store, have }, manifestPath)
    }
    const { manifest, bytes, cid } = await createManifest(path)
    const written = await saveManifest(path, manifest.name, bytes, options.manifestPath)
    const store = await openSeedStore(path, manifest)
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createNode({ listen: options.listen, privateKey, log: options.log })
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
      if (cached.length === 0) throw new NoSwarmSourcesError()
    }
    // a new identity each run: several peers started from one account never share one
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createNode({ listen: options.listen, privateKey, log: options.log })
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
    for (const p of peers) {
      if (this.known.has(p.peerId)) continue
      if (this.known.size >= MAX_KNOWN) this.known.delete(this.known.keys().next().value as string)
      this.known.set(p.peerId, { peer: p, source })
    }
    if (this.swarm != null) this.swarm.addPeers(peers, source)
    else this.fetchFromKnown(peers)
  }

  /**
   * Asks peers for the manifest, several at once with short deadlines (see ManifestRace); peers
   * told of later join in. The first that verifies wins and the download starts; an error then
   * is ours (disk, the output directory), not the peer's: it ends the run.
   */
  private fetchFromKnown (peers: PeerAddress[]): void {
    if (this.manifest != null || this.stopped || this.plan.kind !== 'get') return
    if (this.race == null) {
      const race = new ManifestRace<{ manifest: Manifest, bytes: Uint8Array, from: PeerAddress }>({
        ask: async (peer, signal) => {
          const connection = await dialGuarded(this.node, this.dialGuard, peer, { signal, timeout: MANIFEST_PATIENCE })
          return { ...await fetchManifest(this.node, connection, this.cid, { signal, answerTimeout: MANIFEST_PATIENCE }), from: peer }
        },
        parallel: MANIFEST_PARALLEL,
        timeout: MANIFEST_DEADLINE,
        log: this.log
      })
      this.race = race
      const outDir = this.plan.outDir
      void race.result.then(async ({ manifest, bytes, from }) => {
        if (this.manifest != null || this.stopped) return
        this.manifestFrom = from
        try {
          await this.download(manifest, bytes, outDir)
        } catch (err) {
          if (!this.stopped) this.safeDispatchEvent('error', { detail: err as Error })
        }
      }, () => {})
    }
    this.race.add(peers)
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
    // temporary files are named from the CID: no manifest name can reach or replace them
    const store = await openDownloadStore(outDir, manifest, this.cid.toString())
    const partPath = store.partPath as string
    let have = new Bitfield(n)
    if (store.reusedPart) {
      // the record is a claim (anyone who can write the file can restore its mtime): the pieces
      // it vouches for are hashed again; without one, every piece is
      const recorded = await readResume(partPath, this.cid.toString(), manifest)
      have = await verifyStore(store, manifest, recorded).catch(async (err) => { await store.close(); throw err })
      const failed = recorded == null ? 0 : recorded.count() - have.count()
      this.log(`resuming: ${have.count()} of ${n} pieces already here (${recorded == null ? 'hashed again' : failed === 0 ? 'resume record, its pieces hashed again' : `resume record; ${failed} of its pieces did not verify and will be fetched again`})`)
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
      dialGuard: this.dialGuard,
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
    // before the crowd: known peers may be many, and fake ones can hold every dial slot
    const from = this.manifestFrom
    if (from != null) swarm.addPeers([from], this.known.get(from.peerId)?.source ?? 'tracker')
    for (const source of PEER_SOURCES) {
      swarm.addPeers([...this.known.values()].filter(k => k.source === source).map(k => k.peer), source)
    }
  }

  /** Announces `stopped`, closes sessions and the node. Never throws. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.race?.stop()
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
    await makeDirs(resolve(dir))
    await access(dir, fsConstants.W_OK)
  } catch (err) {
    throw new OutputDirError(dir, (err as NodeJS.ErrnoException).code ?? (err as Error).message)
  }
}

/**
 * `mkdir -p`, one component at a time. Node 20's `mkdir(…, { recursive: true })` loops forever
 * (100% CPU) where the parent exists but refuses children with ENOENT, as /proc/self does.
 */
async function makeDirs (path: string): Promise<void> {
  const root = parsePath(path).root
  const parts = path.slice(root.length).split(sep).filter(p => p !== '')
  let at = root
  for (const part of parts) {
    at = join(at, part)
    try {
      await mkdir(at)
    } catch (err) {
      // EEXIST: there already (a file in the way fails the next mkdir or the check below)
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  if (!(await stat(path)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
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
