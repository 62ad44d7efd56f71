/**
 * Peers seen in earlier runs, kept on disk so a node can join the DHT again without a tracker.
 * It is the peer book's memory across runs, not a list of its own: `save()` merges in the peers
 * the book marked reached (PeerBook.reachedPeers), and `load()` hands the file's peers to
 * Discovery, which dials them and adds those that answer to the book (source `cache`).
 *
 * The cache is an optimisation: reading it never throws (a missing, truncated or hand-edited file
 * counts as empty), writing it never throws (errors are logged). Several processes may share one
 * state dir, so save() merges with what is on disk at that moment and replaces the file by an
 * atomic rename. The file holds only public peer ids and addresses: no identity, no keys.
 */
import { mkdir, open } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { writeFileAtomic } from '../storage/atomic-file.js'
import { xdgDir } from '../base-dirs.js'
import type { PeerAddress } from './types.js'
import type { ReachedPeer } from './peer-book.js'
import { splitPeerAddr } from '../net/addr.js'

export const PEER_CACHE_FILE = 'peers.json'
export const PEER_CACHE_VERSION = 1
export const DEFAULT_MAX_ENTRIES = 200
export const DEFAULT_MAX_AGE = 7 * 24 * 60 * 60 * 1000
/** per peer, as in peer exchange */
export const MAX_ADDRS_PER_PEER = 8
/** a full cache (200 peers × 8 addrs) is well under this; anything bigger is not ours */
const MAX_FILE_BYTES = 4 * 1024 * 1024
const MAX_ADDR_CHARS = 1024
/** a lost race (see save()) is retried at most this many times */
const MAX_SAVE_ATTEMPTS = 5
/** ms; a random pause before a retry, so writers that collided do not collide again in lock-step */
const RETRY_JITTER = 25
/** bounds the memory of forget() in a long run */
const MAX_TOMBSTONES = 1000
/** a timestamp further ahead than this is no real sighting (hand edit, broken clock) */
const MAX_FUTURE = 24 * 60 * 60 * 1000

/**
 * Where bitswarm keeps state between runs:
 * $BITSWARM_STATE_DIR, else $XDG_STATE_HOME/bitswarm, else <home>/.local/state/bitswarm.
 */
export function defaultStateDir (env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const own = env.BITSWARM_STATE_DIR
  if (own !== undefined && own !== '') return own
  return xdgDir('state', env, home)
}

export interface PeerCacheInit {
  dir: string
  /** default 200 */
  maxEntries?: number
  /** ms, default 7 days */
  maxAge?: number
  now?: () => number
  log?: (msg: string) => void
}

/** a peer as the file holds it: lastSeen in ms since the epoch */
type CacheEntry = ReachedPeer

/** peers seen in earlier runs, to join the DHT again without a tracker */
export class PeerCache {
  /** `<dir>/peers.json` */
  readonly path: string
  private readonly dir: string
  private readonly maxEntries: number
  private readonly maxAge: number
  private readonly now: () => number
  private readonly log: (msg: string) => void
  /** peerId → when it was forgotten: it goes unless it was seen later (by us or another process) */
  private readonly forgotten = new Map<string, number>()
  /** saves of one instance run one after the other, so they cannot undo each other */
  private saving: Promise<void> = Promise.resolve()

  constructor (init: PeerCacheInit) {
    const maxEntries = init.maxEntries ?? DEFAULT_MAX_ENTRIES
    const maxAge = init.maxAge ?? DEFAULT_MAX_AGE
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new RangeError(`maxEntries must be a non-negative integer, got ${maxEntries}`)
    if (!(maxAge >= 0)) throw new RangeError(`maxAge must be a non-negative number, got ${maxAge}`)
    this.dir = init.dir
    this.path = join(init.dir, PEER_CACHE_FILE)
    this.maxEntries = maxEntries
    this.maxAge = maxAge
    this.now = init.now ?? Date.now
    this.log = init.log ?? (() => {})
  }

  /** missing → []; corrupt/unreadable → [] and a log line; freshest first; expired dropped */
  async load (): Promise<PeerAddress[]> {
    const entries = await this.read()
    return entries.map(e => ({ peerId: e.peerId, multiaddrs: [...e.multiaddrs] }))
  }

  /** `peerId` goes from the file at the next save, unless it is seen after now */
  forget (peerId: string): void {
    const id = normalizePeerId(peerId) ?? peerId
    this.forgotten.delete(id)
    this.forgotten.set(id, this.now())
    for (const key of this.forgotten.keys()) {
      if (this.forgotten.size <= MAX_TOMBSTONES) break
      this.forgotten.delete(key)
    }
  }

  /**
   * Merges `reached` (the peer book's reached peers; their ids came from libp2p connections and
   * their addresses were checked where they came in) with what is on disk now, caps, writes to a
   * unique temp name and renames over the file, so concurrent writers never corrupt it. Never
   * throws: errors are logged.
   */
  async save (reached: readonly ReachedPeer[] = []): Promise<void> {
    const ours = this.ours(reached)
    this.saving = this.saving
      .then(async () => { await this.saveNow(ours) })
      .catch(err => { this.log(`peer cache: save failed: ${describe(err)}`) })
    await this.saving
  }

  /** `reached` as the file keeps it: the newest sighting of each peer, at most 8 addresses, none forgotten since */
  private ours (reached: readonly ReachedPeer[]): Map<string, CacheEntry> {
    const byId = new Map<string, CacheEntry>()
    for (const p of reached) {
      const forgottenAt = this.forgotten.get(p.peerId)
      if (forgottenAt !== undefined && p.lastSeen <= forgottenAt) continue
      const other = byId.get(p.peerId)
      if (other !== undefined && other.lastSeen >= p.lastSeen) continue
      byId.set(p.peerId, { peerId: p.peerId, multiaddrs: p.multiaddrs.slice(0, MAX_ADDRS_PER_PEER), lastSeen: p.lastSeen })
    }
    return byId
  }

  private async saveNow (ours: Map<string, CacheEntry>): Promise<void> {
    // nothing to add or remove: leave the file (and a possibly read-only dir) alone
    if (ours.size === 0 && this.forgotten.size === 0) return
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      this.log(`peer cache: cannot create ${this.dir}: ${describe(err)}`)
      return
    }
    // Two processes may read, merge and rename at the same time; the last rename wins and may lack
    // the other's peers. Read back, and merge again if ours went missing: a few jittered rounds make
    // a loss unlikely, though without a lock file (only peers.json may be written) not impossible.
    for (let attempt = 1; attempt <= MAX_SAVE_ATTEMPTS; attempt++) {
      if (attempt > 1) await sleep(Math.random() * RETRY_JITTER * attempt)
      const onDisk = await this.read(attempt === 1)
      const merged = this.merge(onDisk, ours)
      if (!await this.write(merged)) return
      if (this.isReflectedIn(await this.read(false), ours)) return
    }
  }

  /** disk entries and ours by peerId, the newer lastSeen wins; then expiry and the cap */
  private merge (onDisk: CacheEntry[], ours: Map<string, CacheEntry>): CacheEntry[] {
    const byId = new Map<string, CacheEntry>()
    for (const e of onDisk) {
      const forgottenAt = this.forgotten.get(e.peerId)
      if (forgottenAt !== undefined && e.lastSeen <= forgottenAt) continue
      byId.set(e.peerId, e)
    }
    for (const e of ours.values()) {
      const other = byId.get(e.peerId)
      if (other === undefined || other.lastSeen < e.lastSeen) byId.set(e.peerId, e)
    }
    return this.freshest([...byId.values()], this.now())
  }

  /** whether the file holds every peer of ours (as recent as ours or newer) and none we forgot */
  private isReflectedIn (onDisk: CacheEntry[], ours: Map<string, CacheEntry>): boolean {
    const byId = new Map(onDisk.map(e => [e.peerId, e]))
    const now = this.now()
    const kept = new Set(this.freshest([...ours.values()], now).map(e => e.peerId))
    for (const e of ours.values()) {
      // an entry the cap or expiry pushed out is not a lost race
      if (!kept.has(e.peerId)) continue
      const found = byId.get(e.peerId)
      if (found === undefined || found.lastSeen < e.lastSeen) {
        // full of fresher peers from others: ours lost fairly
        if (onDisk.length >= this.maxEntries && onDisk[onDisk.length - 1].lastSeen >= e.lastSeen) continue
        return false
      }
    }
    for (const [peerId, at] of this.forgotten) {
      const found = byId.get(peerId)
      if (found !== undefined && found.lastSeen <= at) return false
    }
    return true
  }

  /** drop expired entries, freshest first, at most maxEntries */
  private freshest (entries: CacheEntry[], now: number): CacheEntry[] {
    return entries
      .filter(e => now - e.lastSeen <= this.maxAge)
      .sort((a, b) => b.lastSeen - a.lastSeen)
      .slice(0, this.maxEntries)
  }

  /** the valid, unexpired entries on disk, freshest first; never throws */
  private async read (logProblems = true): Promise<CacheEntry[]> {
    const log = logProblems ? this.log : () => {}
    let text: string
    try {
      const handle = await open(this.path, 'r')
      try {
        const { size } = await handle.stat()
        if (size > MAX_FILE_BYTES) {
          log(`peer cache: ${this.path} is ${size} bytes, more than ${MAX_FILE_BYTES}; ignoring it`)
          return []
        }
        text = await handle.readFile('utf8')
      } finally {
        await handle.close()
      }
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') log(`peer cache: cannot read ${this.path}: ${describe(err)}; ignoring it`)
      return []
    }
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (err) {
      log(`peer cache: ${this.path} is not valid JSON (${describe(err)}); ignoring it`)
      return []
    }
    if (!isObject(doc) || doc.version !== PEER_CACHE_VERSION || !Array.isArray(doc.peers)) {
      log(`peer cache: ${this.path} is not a version ${PEER_CACHE_VERSION} peer cache; ignoring it`)
      return []
    }
    const now = this.now()
    const byId = new Map<string, CacheEntry>()
    let bad = 0
    for (const raw of doc.peers as unknown[]) {
      const entry = parseEntry(raw, now)
      if (entry === undefined) {
        bad++
        continue
      }
      const other = byId.get(entry.peerId)
      if (other === undefined || other.lastSeen < entry.lastSeen) byId.set(entry.peerId, entry)
    }
    if (bad > 0) log(`peer cache: skipped ${bad} bad ${bad === 1 ? 'entry' : 'entries'} in ${this.path}`)
    return this.freshest([...byId.values()], now)
  }

  /** write to a unique temp file and rename it over the cache; false (and a log line) on failure */
  private async write (entries: CacheEntry[]): Promise<boolean> {
    const doc = {
      version: PEER_CACHE_VERSION,
      peers: entries.map(e => ({ peerId: e.peerId, multiaddrs: e.multiaddrs, lastSeen: e.lastSeen }))
    }
    try {
      await writeFileAtomic(this.path, JSON.stringify(doc) + '\n', { mode: 0o600, sync: true })
      return true
    } catch (err) {
      this.log(`peer cache: cannot write ${this.path}: ${describe(err)}`)
      return false
    }
  }
}

function parseEntry (raw: unknown, now: number): CacheEntry | undefined {
  if (!isObject(raw) || typeof raw.peerId !== 'string' || !Array.isArray(raw.multiaddrs)) return undefined
  const lastSeen = raw.lastSeen
  if (typeof lastSeen !== 'number' || !Number.isFinite(lastSeen) || lastSeen < 0 || lastSeen > now + MAX_FUTURE) return undefined
  const clean = sanitize(raw.peerId, raw.multiaddrs as unknown[])
  if (clean === undefined) return undefined
  // a clock stepped back a little: clamp, so the entry cannot win every merge; far-future ones are
  // dropped above, as clamping on each load would never let them expire
  return { ...clean, lastSeen: Math.min(lastSeen, now) }
}

/** a canonical peer id and up to 8 valid, distinct addrs without `/p2p/<id>`; undefined if none */
function sanitize (rawPeerId: unknown, rawAddrs: readonly unknown[]): PeerAddress | undefined {
  const peerId = normalizePeerId(rawPeerId)
  if (peerId === undefined || !Array.isArray(rawAddrs)) return undefined
  const multiaddrs: string[] = []
  for (const a of rawAddrs) {
    if (multiaddrs.length >= MAX_ADDRS_PER_PEER) break
    const addr = normalizeAddr(a, peerId)
    if (addr !== undefined && !multiaddrs.includes(addr)) multiaddrs.push(addr)
  }
  return multiaddrs.length > 0 ? { peerId, multiaddrs } : undefined
}

function normalizePeerId (raw: unknown): string | undefined {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 256) return undefined
  try {
    return peerIdFromString(raw).toString()
  } catch {
    return undefined
  }
}

function normalizeAddr (raw: unknown, peerId: string): string | undefined {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_ADDR_CHARS) return undefined
  try {
    const { bare, peerId: own } = splitPeerAddr(raw)
    // an address of some other peer is no way to reach this one
    if (own !== undefined && normalizePeerId(own) !== peerId) return undefined
    if (bare.getComponents().length === 0) return undefined
    return bare.toString()
  } catch {
    return undefined
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise<void>(resolve => { setTimeout(resolve, ms) })
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function errorCode (err: unknown): string | undefined {
  return isObject(err) && typeof err.code === 'string' ? err.code : undefined
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
