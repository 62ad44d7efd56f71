/**
 * A bitswarm peer: a libp2p node (its own, or one a program built), the manifest exchange,
 * discovery (trackers, DHT, bootstrap, peer cache) and, once the manifest is known, the swarm.
 * `seed` and `get` are the two ways to make one; `start()` runs it. It patches no global: on
 * Node 20 the program installs the polyfills first (see polyfills.ts).
 */
import { access, mkdir, stat } from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, parse as parsePath, resolve, sep } from 'node:path'
import { TypedEventEmitter } from 'main-event'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { Bitfield } from './bitfield.js'
import { Libp2pNodeError, ManifestNotFoundError, MissingPolyfillError, NoSwarmSourcesError, OutputDirError, UsageError } from './errors.js'
import type { ChokerInit } from './choker/choker.js'
import { Discovery, type DiscoveryStatus } from './discovery/discovery.js'
import { DialGuard } from './discovery/dial-guard.js'
import { dialGuarded } from './discovery/guarded-dial.js'
import { PeerBook } from './discovery/peer-book.js'
import { defaultStateDir, PeerCache } from './discovery/peer-cache.js'
import type { PeerAddress } from './discovery/types.js'
import { fetchManifest, MANIFEST_PROTOCOL, serveManifests } from './exchange/exchange.js'
import { ManifestRace } from './exchange/race.js'
import { manifestLayout, parseCid, pieceCount, type FolderManifest, type Manifest } from './manifest/manifest.js'
import { compileSelection, selectFiles } from './manifest/select.js'
import { looksLikeLink, parseLink } from './link/link.js'
import { checkNode, createNode, DHT_MODES, dhtModeOf, fullAddrs, type BitswarmNode, type DhtMode } from './node.js'
import { addressClassFromEnv, defaultAddressClass, isPublicAddress, type AddressClassifier } from './net/address-class.js'
import { reachabilityOf, UnreachableWatch, type Reachability } from './net/reachability.js'
import { multiaddr } from '@multiformats/multiaddr'
import { missingPolyfills } from './polyfills.js'
import { createManifest, readManifestFile, writeManifestFile } from './storage/manifest-file.js'
import { readResume, ResumeWriter, verifyStore } from './storage/resume.js'
import { openDownloadStore, openSeedStore, type PieceStore } from './storage/storage.js'
import { folderSpecOf, openFolderDownloadStore, openFolderSeedStore, wantedPieces } from './storage/folder-store.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { emptySources, PEER_SOURCES, Swarm, type PeerInfo, type PeerSource, type PieceMap, type SwarmStats } from './swarm/swarm.js'
import type { PeerVia } from './swarm/sessions.js'
import { WIRE_PROTOCOL } from './wire/codec.js'

/** Where a peer is: fetching the manifest, downloading pieces, or seeding. */
export type Phase = 'manifest' | 'downloading' | 'seeding'

export { UsageError }

export interface PeerOptions {
  /** listen addresses of the peer's own node (default `/ip4/0.0.0.0/tcp/0` and `/ip6/::/tcp/0`; unused with `libp2p`) */
  listen?: string[]
  /**
   * addresses the peer's own node advertises besides its listen addresses, without `/p2p/<id>`
   * (a port forwarded on the router, a public address; unused with `libp2p`)
   */
  announce?: string[]
  /**
   * relays (multiaddrs with `/p2p/<id>`) the peer's own node holds a reservation on, so that
   * peers who cannot dial it reach it through them (see net/relay.ts; unused with `libp2p`)
   */
  relays?: string[]
  trackers?: string[]
  /** multiaddrs (with /p2p/<id>) of peers to join the DHT through */
  bootstrap?: string[]
  /** where the peer cache lives (default: defaultStateDir()); false: no cache */
  stateDir?: string | false
  /** ms between peer-exchange messages (default 30_000) */
  pexInterval?: number
  /** ms between DHT lookups while the trackers are down (default 5_000) */
  lookupInterval?: number
  /**
   * the Kademlia DHTs to provide and look up the manifest on: `auto` (default; true is the same)
   * the LAN one and the internet one side by side, `lan`, `wan`, or `off` (false is the same)
   */
  dht?: boolean | DhtMode
  /**
   * which addresses are public, private or loopback, for the DHTs of the peer's own node (the
   * internet one keeps public addresses and serves once one of ours is; default: libp2p's
   * ranges, see src/net/address-class.ts); unused with `libp2p`
   */
  addressClass?: AddressClassifier
  choker?: ChokerInit
  log?: (msg: string) => void
  /** tracker retry backoff floor, ms (tests shrink it) */
  trackerMinBackoff?: number
  /** upload cap, bytes/s, all peers together (default: none) */
  maxUploadRate?: number
  /** download cap, bytes/s, all peers together (default: none) */
  maxDownloadRate?: number
  /**
   * Run on this libp2p node instead of building one (Helia's `createHelia({ libp2p })`). The
   * peer registers its two protocols on it (one peer per node at a time), starts it if it is
   * stopped, and on stop unregisters them and leaves the node running: closing it is the
   * program's business. The node needs the identify service, and kad-dht as `services.dht`
   * (LAN) and/or `services.wanDHT` (internet) unless `dht: false`; `libp2pDefaults()` is
   * bitswarm's own configuration (its connection gater bounds half-open inbound connections
   * per IP).
   */
  libp2p?: Libp2p
  /**
   * The node's key. Without `libp2p`, the identity to run as (default: a new one each run). With
   * `libp2p`, that node's key: needed only to announce to trackers, which take peer records
   * signed with it.
   */
  privateKey?: PrivateKey
  /** aborting it stops the peer as `stop()` does; a `start()` under way rejects with its reason */
  signal?: AbortSignal
  /** ms between `progress` events while the peer runs (default 1_000; 0: none) */
  progressInterval?: number
}

export interface GetOptions extends PeerOptions {
  /**
   * Globs over a folder's paths (`/`-separated; `*`, `**`, `?`): only the files they match are
   * fetched and written, and the download is complete when they are (default: everything)
   */
  select?: string[]
  /** fetch the manifest and stop there: `manifest` fires, no store is opened (`bitswarm info`) */
  manifestOnly?: boolean
}

export interface SeedOptions extends PeerOptions {
  /** the manifest to reuse or write (default `<file>.bitswarm` beside the file) */
  manifestPath?: string
  /** trust the file against an existing manifest without hashing it again */
  skipVerify?: boolean
}

/** A `progress` event: the swarm's counters, where the peer is, and the manifest's CID. */
export interface PeerProgress extends SwarmStats {
  cid: string
  phase: Phase
}

export interface PeerEvents {
  /** a session with a remote peer opened; `source` is how we learned of it, `via` how we reach it */
  'peer:connect': CustomEvent<{ peerId: string, source: PeerSource, via: PeerVia }>
  /**
   * a session closed: `reason` says why (a protocol violation, a failed stream, `both have every
   * piece`, …); none when the stream just ended (the peer left, or we let an idle session go)
   */
  'peer:disconnect': CustomEvent<{ peerId: string, reason?: string }>
  /** the manifest is known (at once when seeding or given a manifest file) */
  'manifest': CustomEvent<{ cid: string, manifest: Manifest }>
  /** every `progressInterval` ms while running, and once more just before `complete` */
  'progress': CustomEvent<PeerProgress>
  /** every piece is on disk and verified, the file is at `path`; the peer now seeds */
  'complete': CustomEvent<{ cid: string, path: string, bytes: number }>
  /** a failure that ends the download (the disk, the output directory); the peer keeps running until stopped */
  'error': CustomEvent<Error>
}

interface SeedPlan { kind: 'seed', manifest: Manifest, bytes: Uint8Array, store: PieceStore, have: Bitfield }
interface GetPlan { kind: 'get', outDir: string, local?: { manifest: Manifest, bytes: Uint8Array } }
type Plan = SeedPlan | GetPlan

/** a leecher with fewer connections than this looks for more */
const WANT_PEERS = 8
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
/** start() waits this long at most for a relay to answer, and then for a reservation on one */
const RELAY_WAIT_MS = 5_000

export class Peer extends TypedEventEmitter<PeerEvents> {
  private readonly node: BitswarmNode
  /** the node is ours (built by seed/get): stopped with the peer */
  private readonly ownsNode: boolean
  readonly cid: CID
  swarm: Swarm | undefined
  manifest: Manifest | undefined
  private manifestBytes: Uint8Array | undefined
  private readonly discovery: Discovery
  /** every peer any source told us of, with the first source that did: discovery and the swarm write to it */
  private readonly book: PeerBook
  private readonly log: (msg: string) => void
  private readonly options: GetOptions
  /** where the manifest was written (seeding) */
  readonly manifestPath: string | undefined
  private readonly plan: Plan
  /** the manifest race, while we look for the manifest */
  private race: ManifestRace<{ manifest: Manifest, bytes: Uint8Array, from: PeerAddress }> | undefined
  /** peers asked for the manifest whose dial failed, and the timer that says when none can be reached */
  private readonly unreachable = new UnreachableWatch()
  private cutOffTimer: ReturnType<typeof setInterval> | undefined
  /** what counts as a public address, for reachability (read once) */
  private classify: AddressClassifier | undefined
  /** the peer whose manifest we took: the swarm dials it first (it has at least the manifest) */
  private manifestFrom: PeerAddress | undefined
  /** which addresses we were told of may be dialled: shared by the manifest race and the swarm */
  private readonly dialGuard = new DialGuard()
  private resume: ResumeWriter | undefined
  private stopped = false
  private stopping: Promise<void> | undefined
  /** starts under way (the node, a protocol handler, the swarm's): stop() lets them land first */
  private readonly busy = new Set<Promise<unknown>>()
  /** the manifest protocol handler is ours to unregister */
  private servingManifests = false
  private progressTimer: ReturnType<typeof setInterval> | undefined
  private readonly onAbort = (): void => { void this.stop() }

  private constructor ({ node, privateKey, owned }: NodeChoice, cid: CID, options: GetOptions, plan: Plan, manifestPath?: string) {
    super()
    this.node = node
    this.ownsNode = owned
    this.cid = cid
    this.options = options
    this.plan = plan
    this.manifestPath = manifestPath
    this.log = options.log ?? (() => {})
    this.book = new PeerBook({ self: node.peerId.toString() })
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
    }, { book: this.book })
    this.discovery.addEventListener('peers', (evt) => { this.onPeers(evt.detail.peers, evt.detail.source) })
    options.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** The libp2p node the peer runs on (its own, or the one given as `libp2p`). */
  get libp2p (): Libp2p {
    return this.node
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
    return { peers: 0, unchoking: 0, unchokedBy: 0, interested: 0, have: 0, pieces: 0, downloaded: 0, uploaded: 0, downloadRate: 0, uploadRate: 0, left: UNKNOWN_LEFT, wasted: 0, hashFailures: 0, sources: emptySources(), reached: { direct: 0, relayed: 0, 'hole-punched': 0 }, downloadedFrom: emptySources(), banned: 0, ratio: 0, distributedCopies: 0 }
  }

  /**
   * Each connected peer (one object per session): its address, how we found and reach it, how
   * much it has, the rates either way, who chokes whom and the choker's view of it (see
   * PeerInfo). Empty until the manifest is known.
   */
  peerInfos (): PeerInfo[] {
    return this.swarm?.peerInfos() ?? []
  }

  /**
   * The pieces at a glance: how many, which we have, which are being fetched, and how many
   * connected peers have each (capped at 255). No pieces until the manifest is known.
   */
  pieceMap (): PieceMap {
    return this.swarm?.pieceMap() ?? { pieces: 0, have: new Bitfield(0), inFlight: [], availability: new Uint8Array(0) }
  }

  /**
   * Hashes `file` and writes its manifest; `start()` then serves it. Listeners attached
   * between the two see every event.
   */
  static async seed (file: string, options: SeedOptions = {}): Promise<Peer> {
    preflight(options)
    const path = resolve(file)
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => { throw new UsageError(`cannot read ${file}: ${err.code ?? err.message}`) })
    const folder = info.isDirectory()
    if (!info.isFile() && !folder) throw new UsageError(`${file} is neither a regular file nor a folder`)
    const log = options.log ?? (() => {})
    const manifestPath = options.manifestPath != null ? resolve(options.manifestPath) : join(dirname(path), `${basename(path)}.bitswarm`)
    // a manifest made earlier for this file keeps its CID across restarts; the data is checked
    // against it (unless told not to), and only pieces that match are served
    const earlier = await readManifestFile(manifestPath).catch(() => undefined)
    const fits = earlier != null && earlier.manifest.name === basename(path) &&
      (folder ? earlier.manifest.version === 2 : earlier.manifest.version === 1 && earlier.manifest.length === info.size)
    // a folder's earlier manifest fits while every file it lists is there at its size
    const store = earlier != null && fits ? await openStoreFor(path, earlier.manifest).catch(() => undefined) : undefined
    if (earlier != null && store != null) {
      let have = Bitfield.full(pieceCount(earlier.manifest))
      if (options.skipVerify !== true) {
        have = await verifyStore(store, earlier.manifest).catch(async (err) => { await store.close(); throw err })
        const bad = have.size - have.count()
        if (bad > 0) log(`${file}: ${bad} of ${have.size} pieces do not match ${manifestPath} (the file changed since); serving the other ${have.count()}. Delete the manifest to make a new one.`)
      }
      const node = await nodeFor(options).catch(async (err) => { await store.close(); throw err })
      return new Peer(node, earlier.cid, options, { kind: 'seed', manifest: earlier.manifest, bytes: earlier.bytes, store, have }, manifestPath)
    }
    const { manifest, bytes, cid } = await createManifest(path, { signal: options.signal })
    const written = await saveManifest(path, manifest.name, bytes, options.manifestPath)
    const created = await openStoreFor(path, manifest)
    const node = await nodeFor(options).catch(async (err) => { await created.close(); throw err })
    return new Peer(node, cid, options, { kind: 'seed', manifest, bytes, store: created, have: Bitfield.full(pieceCount(manifest)) }, written)
  }

  /**
   * Checks the target (a manifest file or a CID) and `outDir`; `start()` then fetches the
   * manifest if need be and downloads.
   */
  static async get (target: string, outDir: string, options: GetOptions = {}): Promise<Peer> {
    preflight(options)
    let cid: CID
    let local: { manifest: Manifest, bytes: Uint8Array } | undefined
    if (looksLikeLink(target)) {
      // a share link names the manifest and where to look: its trackers and peers join ours
      const link = parseLink(target)
      cid = link.cid
      options = { ...options, trackers: [...new Set([...(options.trackers ?? []), ...link.trackers])], bootstrap: [...new Set([...(options.bootstrap ?? []), ...link.peers])] }
    } else if (await isFile(target)) {
      const m = await readManifestFile(target)
      cid = m.cid
      local = m
    } else {
      try {
        cid = parseCid(target)
      } catch {
        throw new UsageError(`${target} is neither a manifest file, a manifest CID nor a share link`)
      }
    }
    await checkWritableDir(outDir)
    // a program's node already connected, with the DHT on, may find the swarm through its DHT
    const joined = options.libp2p != null && dhtModeOf(options.dht) !== 'off' && options.libp2p.getConnections().length > 0
    if ((options.trackers ?? []).length === 0 && (options.bootstrap ?? []).length === 0 && !joined) {
      const dir = stateDirOf(options)
      const cached = dir == null ? [] : await new PeerCache({ dir }).load()
      if (cached.length === 0) throw new NoSwarmSourcesError()
    }
    return new Peer(await nodeFor(options), cid, options, { kind: 'get', outDir: resolve(outDir), local })
  }

  /**
   * Starts the node (unless a program's node is running already), serves, and starts looking
   * for the swarm. On failure, or when stopped or aborted meanwhile, the peer is stopped and
   * this rejects (with the signal's reason when aborted).
   */
  async start (): Promise<void> {
    try {
      this.throwIfStopped()
      await this.track(this.begin())
      this.throwIfStopped()
      const plan = this.plan
      if (plan.kind === 'seed') {
        await this.startSwarm(plan.manifest, plan.bytes, plan.store, plan.have, true)
      } else if (plan.local != null) {
        await this.download(plan.local.manifest, plan.local.bytes, plan.outDir)
      }
      this.throwIfStopped()
      // with only a CID, discovery's first answers name the peers to ask for the manifest
      await this.discovery.start()
      this.throwIfStopped()
      const every = this.options.progressInterval ?? 1_000
      if (every > 0) {
        this.progressTimer = setInterval(() => { this.progress() }, every)
        this.progressTimer.unref?.()
      }
    } catch (err) {
      await this.stop()
      throw this.options.signal?.aborted === true ? this.options.signal.reason : err
    }
  }

  /** Starts the node and serves the manifest (once we have it). */
  private async begin (): Promise<void> {
    // a program's node may be running (or starting) already: libp2p's start() is then a no-op
    if (this.ownsNode || this.node.status === 'stopped') await this.node.start()
    this.throwIfStopped()
    await this.joinRelays()
    this.throwIfStopped()
    try {
      await serveManifests(this.node, (c) => c === this.cid.toString() ? this.manifestBytes : undefined, this.log)
    } catch (err) {
      if ((err as Error).name === 'DuplicateProtocolHandlerError') throw new Libp2pNodeError('the libp2p node already runs a bitswarm peer: one peer per node at a time')
      throw err
    }
    this.servingManifests = true
  }

  /**
   * Dials the relays we were given and waits (a few seconds at most) for a reservation on one:
   * its circuit address is then among those we announce from the first announce on. A relay
   * that cannot be reached is a line in the log, not a failure: we may be reachable anyway.
   */
  private async joinRelays (): Promise<void> {
    const relays = this.ownsNode ? this.options.relays ?? [] : []
    if (relays.length === 0) return
    const reserved = (): boolean => this.node.getMultiaddrs().some(ma => ma.getComponents().some(c => c.name === 'p2p-circuit'))
    const got = Promise.withResolvers<void>()
    const onUpdate = (): void => { if (reserved()) got.resolve() }
    this.node.addEventListener('self:peer:update', onUpdate)
    try {
      const dials = relays.map(async (r) => {
        try {
          await this.node.dial(multiaddr(r), { signal: AbortSignal.timeout(RELAY_WAIT_MS) })
        } catch (err) {
          this.log(`relay ${r} cannot be reached: ${(err as Error).message}`)
        }
      })
      await Promise.race([got.promise, Promise.all(dials).then(async () => {
        if (!reserved()) await Promise.race([got.promise, new Promise(resolve => setTimeout(resolve, RELAY_WAIT_MS).unref())])
      })])
      if (!reserved()) this.log(`no reservation on ${relays.length === 1 ? 'the relay' : 'any relay'} yet: peers that cannot dial us will not reach us until one is made`)
    } finally {
      this.node.removeEventListener('self:peer:update', onUpdate)
    }
  }

  /** Whether others can reach us, from the addresses we advertise (see net/reachability.ts). */
  get reachability (): Reachability {
    if (this.node.status !== 'started') return 'unknown'
    this.classify ??= this.options.addressClass ?? addressClassFromEnv() ?? defaultAddressClass
    const classify = this.classify
    return reachabilityOf(this.node.getMultiaddrs(), ma => isPublicAddress(ma, classify))
  }

  private throwIfStopped (): void {
    this.options.signal?.throwIfAborted()
    if (this.stopped) throw new DOMException('the peer was stopped', 'AbortError')
  }

  /** Runs `work` to its end even if stop() comes meanwhile (stop waits for it). */
  private async track<T> (work: Promise<T>): Promise<T> {
    this.busy.add(work)
    try {
      return await work
    } finally {
      this.busy.delete(work)
    }
  }

  private progress (): void {
    this.safeDispatchEvent('progress', { detail: { ...this.stats(), cid: this.cid.toString(), phase: this.phase } })
  }

  /** Peers discovery found (already in the book): the swarm dials them, or they are asked for the manifest. */
  private onPeers (peers: PeerAddress[], source: PeerSource): void {
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
          let connection
          try {
            connection = await dialGuarded(this.node, this.dialGuard, peer, { signal, timeout: MANIFEST_PATIENCE })
          } catch (err) {
            // (a dial the race gave up on counts: a NAT drops it in silence)
            if (!this.stopped) this.unreachable.dialFailed(peer.peerId)
            throw err
          }
          this.unreachable.reached(peer.peerId)
          return { ...await fetchManifest(this.node, connection, this.cid, { signal, answerTimeout: MANIFEST_PATIENCE }), from: peer }
        },
        parallel: MANIFEST_PARALLEL,
        timeout: MANIFEST_DEADLINE,
        log: this.log
      })
      this.race = race
      // nobody that has the manifest can be reached for a while: say so once, and what to do
      this.unreachable.start(Date.now())
      this.cutOffTimer = setInterval(() => {
        if (this.manifest != null || this.stopped) { clearInterval(this.cutOffTimer); return }
        const line = this.unreachable.check(Date.now(), 0)
        if (line === undefined) return
        clearInterval(this.cutOffTimer)
        this.log(line)
      }, 1000)
      this.cutOffTimer.unref?.()
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
    if (this.options.manifestOnly === true) {
      this.manifest = manifest
      this.manifestBytes = bytes
      this.safeDispatchEvent('manifest', { detail: { cid: this.cid.toString(), manifest } })
      return
    }
    if (manifest.version === 2) {
      await this.downloadFolder(manifest, bytes, outDir)
      return
    }
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
    await this.startDownload(manifest, bytes, store, have)
  }

  /** Starts the swarm on a download store, its resume record kept as pieces arrive and dropped at the end. */
  private async startDownload (manifest: Manifest, bytes: Uint8Array, store: PieceStore, have: Bitfield, wanted?: Bitfield): Promise<void> {
    const partPath = store.partPath as string
    const resume = new ResumeWriter({ store, cid: this.cid.toString(), have: () => this.swarm?.have ?? have, log: this.log })
    this.resume = resume
    await this.startSwarm(manifest, bytes, store, have, false, (swarm) => {
      swarm.addEventListener('piece', () => { resume.touch() })
      swarm.addEventListener('complete', () => { this.resume = undefined; void resume.done(partPath) })
    }, wanted)
  }

  /**
   * A folder into `outDir/<name>/`: the selected files (all without a selection) go to part
   * files in a staging folder and are put in place when every one is verified; files an earlier
   * run put in place are checked and kept (see openFolderDownloadStore).
   */
  private async downloadFolder (manifest: FolderManifest, bytes: Uint8Array, outDir: string): Promise<void> {
    const layout = manifestLayout(manifest)
    const globs = this.options.select ?? []
    let selected: number[] | undefined
    let emptyFolders: ReadonlyArray<readonly string[]> | undefined
    if (globs.length > 0) {
      selected = selectFiles(manifest.files, globs)
      const match = compileSelection(globs)
      emptyFolders = manifest.folders.filter(f => match(f))
    }
    const store = await openFolderDownloadStore(outDir, folderSpecOf(manifest), this.cid.toString(), { selected, emptyFolders })
    const partPath = store.partPath as string
    let have = new Bitfield(layout.pieceCount)
    if (store.reusedPart) {
      const recorded = await readResume(partPath, this.cid.toString(), manifest)
      // files already in place were not written by us: their pieces are hashed whatever the record says
      let only = recorded
      if (recorded != null && store.existingFiles.size > 0) {
        only = recorded.clone()
        for (const i of store.existingFiles) {
          const f = layout.files[i]
          for (let p = f.firstPiece; p < f.firstPiece + f.pieceCount; p++) only.set(p)
        }
      }
      have = await verifyStore(store, manifest, only).catch(async (err) => { await store.close(); throw err })
      for (const i of store.existingFiles) {
        const f = layout.files[i]
        for (let p = f.firstPiece; p < f.firstPiece + f.pieceCount; p++) {
          if (!have.get(p)) {
            await store.close()
            throw new UsageError(`${join(store.path, ...f.path)} already exists and is not this manifest's file: move it away first`)
          }
        }
      }
      this.log(`resuming: ${have.count()} of ${layout.pieceCount} pieces already here`)
    }
    await this.startDownload(manifest, bytes, store, have, wantedPieces(layout, selected))
  }

  private async startSwarm (manifest: Manifest, bytes: Uint8Array, store: PieceStore, have: Bitfield, seeding: boolean, wire?: (swarm: Swarm) => void, wanted?: Bitfield): Promise<void> {
    // stopped while the store was opened or checked: no swarm, and the store is ours to close
    if (this.stopped) {
      await store.close()
      this.throwIfStopped()
    }
    this.manifest = manifest
    this.manifestBytes = bytes
    const swarm = new Swarm({
      node: this.node,
      manifest,
      cid: this.cid,
      store,
      have,
      wanted,
      seeding,
      choker: this.options.choker,
      maxUploadRate: this.options.maxUploadRate,
      maxDownloadRate: this.options.maxDownloadRate,
      pexInterval: this.options.pexInterval,
      dialGuard: this.dialGuard,
      book: this.book,
      log: this.log
    })
    swarm.addEventListener('peer:connect', (evt) => {
      // a peer we were told of and reached: the peer cache keeps it for the next run
      this.book.reached(evt.detail.peerId)
      this.safeDispatchEvent('peer:connect', { detail: evt.detail })
    })
    swarm.addEventListener('peer:disconnect', (evt) => { this.safeDispatchEvent('peer:disconnect', { detail: evt.detail }) })
    swarm.addEventListener('complete', (evt) => {
      this.discovery.completed()
      if ((this.options.progressInterval ?? 1_000) > 0) this.progress()
      this.safeDispatchEvent('complete', { detail: { cid: this.cid.toString(), ...evt.detail } })
    })
    swarm.addEventListener('error', (evt) => { this.safeDispatchEvent('error', { detail: evt.detail }) })
    wire?.(swarm)
    this.swarm = swarm
    this.safeDispatchEvent('manifest', { detail: { cid: this.cid.toString(), manifest } })
    // a listener may have stopped us: the swarm (and its store) is stop()'s now
    this.throwIfStopped()
    // a download with nothing left (an empty file) completes inside start()
    await this.track(swarm.start())
    // before the crowd: known peers may be many, and fake ones can hold every dial slot
    const from = this.manifestFrom
    if (from != null) swarm.addPeers([from], this.book.sourceOf(from.peerId) ?? 'tracker')
    // every peer heard of while we looked for the manifest, by source
    for (const source of PEER_SOURCES) swarm.addPeers(this.book.peers(source), source)
  }

  /**
   * Announces `stopped`, closes sessions, unregisters the peer's protocols and stops its own node
   * (a program's node keeps running). Never throws; every call returns the same promise.
   */
  async stop (): Promise<void> {
    this.stopping ??= this.shutdown()
    await this.stopping
  }

  private async shutdown (): Promise<void> {
    this.stopped = true
    this.options.signal?.removeEventListener('abort', this.onAbort)
    clearInterval(this.progressTimer)
    clearInterval(this.cutOffTimer)
    this.race?.stop()
    // a handler registered after we unregistered it would stay on a program's node
    await Promise.allSettled([...this.busy])
    await this.discovery.stop().catch(() => {})
    // stop trading and let writes under way land, then record what is on disk for the next run
    await this.swarm?.drain().catch(() => {})
    await this.resume?.flush().catch(() => {})
    await this.swarm?.stop().catch(() => {})
    if (this.swarm == null && this.plan.kind === 'seed') await this.plan.store.close().catch(() => {})
    if (this.servingManifests) await this.node.unhandle(MANIFEST_PROTOCOL).catch(() => {})
    if (this.ownsNode) await Promise.resolve(this.node.stop()).catch(() => {})
  }
}

/** The seed store of a file (version 1) or a folder (version 2). */
async function openStoreFor (path: string, manifest: Manifest): Promise<PieceStore> {
  return manifest.version === 2 ? await openFolderSeedStore(path, folderSpecOf(manifest)) : await openSeedStore(path, manifest)
}

/**
 * The manifest of `cid`, fetched from the swarm as `get` would (its trackers, peers given with
 * /p2p/<id>, the DHT), without downloading anything. Rejects after `timeout` ms (default 60 s).
 */
export async function fetchManifestOnly (cid: string, where: { trackers: string[], peers: string[] }, options: PeerOptions & { timeout?: number } = {}): Promise<Manifest> {
  const peer = await Peer.get(cid, tmpdir(), { ...options, trackers: where.trackers, bootstrap: where.peers, manifestOnly: true, progressInterval: 0 })
  const got = new Promise<Manifest>((resolve) => { peer.addEventListener('manifest', (evt) => { resolve(evt.detail.manifest) }, { once: true }) })
  const timeout = options.timeout ?? 60_000
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await peer.start()
    return await Promise.race([got, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new ManifestNotFoundError(`no peer gave the manifest of ${cid} within ${Math.round(timeout / 1000)} s`)) }, timeout)
    })])
  } finally {
    clearTimeout(timer)
    await peer.stop()
  }
}

interface NodeChoice { node: BitswarmNode, privateKey: PrivateKey | undefined, owned: boolean }

/** What can be checked before any work: the runtime, the signal, a program's node. */
function preflight (options: PeerOptions): void {
  const missing = missingPolyfills()
  if (missing.length > 0) throw new MissingPolyfillError(missing)
  options.signal?.throwIfAborted()
  if (typeof options.dht === 'string' && !DHT_MODES.includes(options.dht)) throw new UsageError(`dht must be one of ${DHT_MODES.join(', ')} (or true / false), got ${String(options.dht)}`)
  const node = options.libp2p
  if (node == null) return
  checkNode(node, { dht: dhtModeOf(options.dht) })
  const protocols = node.getProtocols()
  if (protocols.includes(MANIFEST_PROTOCOL) || protocols.includes(WIRE_PROTOCOL)) throw new Libp2pNodeError('the libp2p node already runs a bitswarm peer: one peer per node at a time')
  if (options.privateKey != null && !peerIdFromPrivateKey(options.privateKey).equals(node.peerId)) throw new Libp2pNodeError(`privateKey is not the key of the libp2p node given (${node.peerId.toString()})`)
  if ((options.trackers ?? []).length > 0 && options.privateKey == null) throw new Libp2pNodeError('announcing to trackers from a libp2p node of your own needs its privateKey (trackers take peer records signed with it): pass the key you gave createLibp2p')
}

/** The program's node, checked; or a node of our own, not started. */
async function nodeFor (options: PeerOptions): Promise<NodeChoice> {
  if (options.libp2p != null) return { node: checkNode(options.libp2p, { dht: dhtModeOf(options.dht) }), privateKey: options.privateKey, owned: false }
  // a new identity each run unless told: several peers started from one account never share one
  const privateKey = options.privateKey ?? await generateKeyPair('Ed25519')
  return { node: await createNode({ listen: options.listen, announce: options.announce, relays: options.relays, privateKey, log: options.log, dht: dhtModeOf(options.dht), addressClass: options.addressClass }), privateKey, owned: true }
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
