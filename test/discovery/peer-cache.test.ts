import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { defaultStateDir, PeerCache } from '../../src/discovery/peer-cache.js'
import type { PeerCacheInit } from '../../src/discovery/peer-cache.js'
import type { ReachedPeer } from '../../src/discovery/peer-book.js'
import type { PeerAddress } from '../../src/discovery/types.js'

const DAY = 24 * 60 * 60 * 1000
const dirs: string[] = []
let ids: string[] = []

beforeAll(async () => {
  // real Ed25519 peer ids: the cache validates them
  ids = await Promise.all(Array.from({ length: 60 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
})

afterEach(async () => {
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
})

async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bitswarm-peer-cache-'))
  dirs.push(d)
  return d
}

function addr (i: number): string {
  return `/ip4/10.0.${Math.floor(i / 250)}.${(i % 250) + 1}/tcp/${4000 + i}`
}

function peer (i: number, ...addrIndexes: number[]): PeerAddress {
  return { peerId: ids[i], multiaddrs: (addrIndexes.length > 0 ? addrIndexes : [i]).map(addr) }
}

/**
 * A PeerCache fed as the peer book feeds it: `remember` stands for a session with each peer now
 * (the book's `reached`), and `save()` hands the cache every peer reached so far, as Discovery
 * hands it PeerBook.reachedPeers().
 */
class ReachedCache extends PeerCache {
  private readonly reached = new Map<string, ReachedPeer>()
  constructor (init: PeerCacheInit, private readonly clock: { t: number }) {
    super(init)
  }

  remember (peers: PeerAddress[]): void {
    for (const p of peers) {
      this.reached.delete(p.peerId)
      this.reached.set(p.peerId, { ...p, lastSeen: this.clock.t })
    }
  }

  override async save (): Promise<void> {
    await super.save([...this.reached.values()])
  }
}

interface Harness { cache: ReachedCache, logs: string[], clock: { t: number } }

function makeCache (dir: string, init: Partial<PeerCacheInit> = {}, clock = { t: 1_000_000 }): Harness {
  const logs: string[] = []
  const cache = new ReachedCache({ dir, now: () => clock.t, log: m => { logs.push(m) }, ...init }, clock)
  return { cache, logs, clock }
}

async function writeRaw (dir: string, content: string | object): Promise<void> {
  await writeFile(join(dir, 'peers.json'), typeof content === 'string' ? content : JSON.stringify(content))
}

async function readDoc (dir: string): Promise<{ version: number, peers: Array<{ peerId: string, multiaddrs: string[], lastSeen: number }> }> {
  return JSON.parse(await readFile(join(dir, 'peers.json'), 'utf8'))
}

function idsOf (peers: PeerAddress[]): string[] {
  return peers.map(p => p.peerId)
}

describe('defaultStateDir', () => {
  it('prefers BITSWARM_STATE_DIR, then XDG_STATE_HOME/bitswarm, then <home>/.local/state/bitswarm', () => {
    expect(defaultStateDir({ BITSWARM_STATE_DIR: '/a/own', XDG_STATE_HOME: '/x/state' }, '/home/u')).toBe('/a/own')
    expect(defaultStateDir({ XDG_STATE_HOME: '/x/state' }, '/home/u')).toBe(join('/x/state', 'bitswarm'))
    expect(defaultStateDir({}, '/home/u')).toBe(join('/home/u', '.local', 'state', 'bitswarm'))
  })

  it('treats empty values as unset and ignores a relative XDG_STATE_HOME (the XDG spec says so)', () => {
    expect(defaultStateDir({ BITSWARM_STATE_DIR: '', XDG_STATE_HOME: '' }, '/home/u')).toBe(join('/home/u', '.local', 'state', 'bitswarm'))
    expect(defaultStateDir({ XDG_STATE_HOME: 'relative/state' }, '/home/u')).toBe(join('/home/u', '.local', 'state', 'bitswarm'))
  })

  it('defaults to process.env and the real home directory', () => {
    expect(typeof defaultStateDir()).toBe('string')
  })
})

describe('PeerCache', () => {
  it('round-trips peers through peers.json, freshest first, with /p2p suffixes stripped', async () => {
    const dir = await tempDir()
    const { cache, logs, clock } = makeCache(dir)
    expect(cache.path).toBe(join(dir, 'peers.json'))
    expect(await cache.load()).toEqual([])   // missing file: empty, silently

    cache.remember([peer(0)])
    clock.t += 1000
    cache.remember([{ peerId: ids[1], multiaddrs: [`${addr(1)}/p2p/${ids[1]}`, addr(2)] }])
    clock.t += 1000
    cache.remember([peer(2)])
    await cache.save()

    const { cache: other, logs: otherLogs } = makeCache(dir, {}, clock)
    expect(await other.load()).toEqual([
      peer(2),
      { peerId: ids[1], multiaddrs: [addr(1), addr(2)] },
      peer(0)
    ])
    const doc = await readDoc(dir)
    expect(doc.version).toBe(1)
    expect(doc.peers.map(p => p.lastSeen)).toEqual([clock.t, clock.t - 1000, clock.t - 2000])
    // only the cache file: no temp files, no identity, no keys
    expect(await readdir(dir)).toEqual(['peers.json'])
    expect(logs).toEqual([])
    expect(otherLogs).toEqual([])
  })

  it('creates the state dir (mode 0700) and the file (mode 0600)', async () => {
    const dir = join(await tempDir(), 'nested', 'state')
    const { cache } = makeCache(dir)
    cache.remember([peer(0)])
    await cache.save()
    if (process.platform !== 'win32') {
      expect((await stat(dir)).mode & 0o777).toBe(0o700)
      expect((await stat(join(dir, 'peers.json'))).mode & 0o777).toBe(0o600)
    }
    expect(idsOf(await makeCache(dir).cache.load())).toEqual([ids[0]])
  })

  it('does not create anything when there is nothing to save', async () => {
    const dir = join(await tempDir(), 'state')
    await makeCache(dir).cache.save()
    await expect(stat(dir)).rejects.toThrow()
  })

  it('merges two instances saving into the same dir', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const a = makeCache(dir, {}, clock).cache
    const b = makeCache(dir, {}, clock).cache
    a.remember([peer(0), peer(1)])
    b.remember([peer(2), peer(3)])
    await a.save()
    await b.save()
    expect(new Set(idsOf(await makeCache(dir, {}, clock).cache.load()))).toEqual(new Set(ids.slice(0, 4)))
    // and a second save of a does not drop b's peers
    await a.save()
    expect(new Set(idsOf(await makeCache(dir, {}, clock).cache.load()))).toEqual(new Set(ids.slice(0, 4)))
  })

  it('keeps the newer sighting of a peer when merging, without mixing addresses', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const a = makeCache(dir, {}, clock).cache
    const b = makeCache(dir, {}, clock).cache
    a.remember([peer(0, 10)])
    clock.t += 5000
    b.remember([peer(0, 11)])
    await b.save()
    await a.save()   // a's sighting is older: it must not overwrite b's
    expect(await makeCache(dir, {}, clock).cache.load()).toEqual([peer(0, 11)])
    clock.t += 5000
    a.remember([peer(0, 12)])
    await a.save()
    expect(await makeCache(dir, {}, clock).cache.load()).toEqual([peer(0, 12)])
  })

  it('survives many concurrent saves: valid JSON, the last writer\'s peers present, no temp files', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const n = 20
    const caches = Array.from({ length: n }, (_, i) => {
      const h = makeCache(dir, {}, clock)
      h.cache.remember([peer(i * 2), peer(i * 2 + 1)])
      return h
    })
    const finished: number[] = []
    await Promise.all(caches.map(async (h, i) => {
      await h.cache.save()
      finished.push(i)
    }))

    const doc = await readDoc(dir)   // throws if the file is not valid JSON
    expect(doc.version).toBe(1)
    const onDisk = new Set(doc.peers.map(p => p.peerId))
    // every entry is one somebody remembered, and no peer twice
    expect(doc.peers.length).toBe(onDisk.size)
    for (const id of onDisk) expect(ids.slice(0, n * 2)).toContain(id)
    // whoever renamed last had merged its own peers: some instance is complete on disk
    expect(caches.some((_, i) => onDisk.has(ids[i * 2]) && onDisk.has(ids[i * 2 + 1]))).toBe(true)
    expect(await readdir(dir)).toEqual(['peers.json'])
    expect(caches.flatMap(h => h.logs)).toEqual([])
    expect(finished).toHaveLength(n)

    // once the dust settles, one more round of (sequential) saves brings everything together
    for (const h of caches) await h.cache.save()
    expect(new Set(idsOf(await makeCache(dir, {}, clock).cache.load()))).toEqual(new Set(ids.slice(0, n * 2)))
  })

  it('serialises concurrent saves of one instance', async () => {
    const dir = await tempDir()
    const { cache, logs } = makeCache(dir)
    cache.remember([peer(0)])
    const first = cache.save()
    cache.remember([peer(1)])
    await Promise.all([first, cache.save(), cache.save()])
    expect(new Set(idsOf(await makeCache(dir).cache.load()))).toEqual(new Set([ids[0], ids[1]]))
    expect(await readdir(dir)).toEqual(['peers.json'])
    expect(logs).toEqual([])
  })

  describe('a corrupt file', () => {
    const wholeFileCases: Array<[string, () => string | object]> = [
      ['garbage', () => 'this is not json at all \u0000\u00ff'],
      ['truncated JSON', () => JSON.stringify({ version: 1, peers: [{ peerId: ids[0], multiaddrs: [addr(0)], lastSeen: 1 }] }).slice(0, 40)],
      ['an empty file', () => ''],
      ['null', () => 'null'],
      ['an array', () => [{ peerId: ids[0], multiaddrs: [addr(0)], lastSeen: 1 }]],
      ['a wrong version', () => ({ version: 2, peers: [{ peerId: ids[0], multiaddrs: [addr(0)], lastSeen: 999_000 }] })],
      ['a missing version', () => ({ peers: [] })],
      ['peers that is not a list', () => ({ version: 1, peers: { [ids[0]]: [addr(0)] } })]
    ]

    for (const [name, content] of wholeFileCases) {
      it(`(${name}) loads as empty with one log line`, async () => {
        const dir = await tempDir()
        await writeRaw(dir, content())
        const { cache, logs } = makeCache(dir)
        expect(await cache.load()).toEqual([])
        expect(logs).toHaveLength(1)
        expect(logs[0]).toContain('peer cache')
      })
    }

    it('(bad entries) keeps the good ones, with one log line for the rest', async () => {
      const dir = await tempDir()
      const good = { peerId: ids[0], multiaddrs: [addr(0)], lastSeen: 999_000 }
      await writeRaw(dir, {
        version: 1,
        peers: [
          null,
          42,
          'peer',
          [ids[1]],
          { peerId: 12, multiaddrs: [addr(1)], lastSeen: 999_000 },
          { peerId: 'QmNotAPeerId', multiaddrs: [addr(1)], lastSeen: 999_000 },
          { peerId: ids[1].slice(0, -3), multiaddrs: [addr(1)], lastSeen: 999_000 },
          { peerId: ids[2], multiaddrs: 'not a list', lastSeen: 999_000 },
          { peerId: ids[3], multiaddrs: ['garbage', '/ip4/999.1.1.1/tcp/1', 7, null, ''], lastSeen: 999_000 },
          { peerId: ids[4], multiaddrs: [`/p2p/${ids[4]}`], lastSeen: 999_000 },
          { peerId: ids[5], multiaddrs: [addr(5)], lastSeen: 'yesterday' },
          { peerId: ids[6], multiaddrs: [addr(6)], lastSeen: -5 },
          { peerId: ids[7], multiaddrs: [addr(7)] },
          good,
          // a good peer with some bad addresses keeps the good ones
          { peerId: ids[8], multiaddrs: ['garbage', addr(8), { addr: addr(9) }], lastSeen: 998_000 }
        ]
      })
      const { cache, logs } = makeCache(dir)
      expect(await cache.load()).toEqual([peer(0), peer(8)])
      expect(logs).toHaveLength(1)
      expect(logs[0]).toMatch(/skipped 13 bad entries/)
    })

    it('(a directory where the file should be) loads as empty with a log line', async () => {
      const dir = await tempDir()
      await mkdir(join(dir, 'peers.json'))
      const { cache, logs } = makeCache(dir)
      expect(await cache.load()).toEqual([])
      expect(logs).toHaveLength(1)
    })

    it('is replaced by a valid file on save', async () => {
      const dir = await tempDir()
      await writeRaw(dir, '{"version":1,"peers":[{"peerId":')
      const { cache } = makeCache(dir)
      cache.remember([peer(0)])
      await cache.save()
      expect(await makeCache(dir).cache.load()).toEqual([peer(0)])
    })
  })

  it('normalises entries: at most 8 distinct addrs, foreign /p2p addrs dropped, future timestamps clamped or dropped', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const many = Array.from({ length: 12 }, (_, i) => addr(100 + i))
    await writeRaw(dir, {
      version: 1,
      peers: [
        { peerId: ids[0], multiaddrs: [many[0], many[0], `${many[1]}/p2p/${ids[0]}`, `${many[2]}/p2p/${ids[1]}`, ...many.slice(3)], lastSeen: 900_000 },
        // a clock stepped back a little: clamped to now, so it cannot win every merge
        { peerId: ids[1], multiaddrs: [addr(1)], lastSeen: clock.t + 60_000 },
        // far in the future: not a real sighting, and it must not outlive everything else
        { peerId: ids[5], multiaddrs: [addr(5)], lastSeen: 1e15 },
        // the same peer twice: the newer entry wins
        { peerId: ids[2], multiaddrs: [addr(20)], lastSeen: 800_000 },
        { peerId: ids[2], multiaddrs: [addr(21)], lastSeen: 850_000 }
      ]
    })
    const { cache, logs } = makeCache(dir, {}, clock)
    const loaded = await cache.load()
    expect(loaded).toEqual([
      peer(1),
      { peerId: ids[0], multiaddrs: [many[0], many[1], ...many.slice(3, 9)] },
      peer(2, 21)
    ])
    expect(logs).toEqual([expect.stringMatching(/skipped 1 bad entry/)])

    // a save writes the clamped timestamp, which then expires like any other
    cache.remember([peer(9)])
    await cache.save()
    expect((await readDoc(dir)).peers.find(p => p.peerId === ids[1])?.lastSeen).toBe(clock.t)
    clock.t += DAY * 7 + 1
    expect(await makeCache(dir, {}, clock).cache.load()).toEqual([])

    // save() writes at most 8 addresses a peer; what the file could not hold is refused when read
    // back (the peer book's ids come from connections, its addresses were checked where they came in)
    const freshDir = await tempDir()
    const fresh = makeCache(freshDir, {}, clock).cache
    fresh.remember([
      { peerId: ids[3], multiaddrs: many },
      { peerId: 'not a peer id', multiaddrs: [addr(1)] },
      { peerId: ids[4], multiaddrs: ['garbage'] }
    ])
    await fresh.save()
    expect(await fresh.load()).toEqual([{ peerId: ids[3], multiaddrs: many.slice(0, 8) }])
    expect((await readDoc(freshDir)).peers.find(p => p.peerId === ids[3])?.multiaddrs).toHaveLength(8)
  })

  it('drops expired entries, on load and on save', async () => {
    const dir = await tempDir()
    const clock = { t: 10 * DAY }
    const { cache } = makeCache(dir, { maxAge: DAY }, clock)
    cache.remember([peer(0)])
    clock.t += DAY / 2
    cache.remember([peer(1)])
    await cache.save()
    expect(idsOf(await cache.load())).toEqual([ids[1], ids[0]])

    clock.t += DAY / 2 + 1   // peer 0 is now older than a day
    expect(idsOf(await cache.load())).toEqual([ids[1]])
    await cache.save()
    expect((await readDoc(dir)).peers.map(p => p.peerId)).toEqual([ids[1]])

    clock.t += DAY
    expect(await cache.load()).toEqual([])
  })

  it('keeps the freshest maxEntries peers', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const { cache } = makeCache(dir, { maxEntries: 5 }, clock)
    for (let i = 0; i < 12; i++) {
      cache.remember([peer(i)])
      clock.t += 10
    }
    await cache.save()
    const expected = ids.slice(7, 12).reverse()
    expect(idsOf(await cache.load())).toEqual(expected)
    expect((await readDoc(dir)).peers).toHaveLength(5)

    // a file over the cap (another process with a larger maxEntries) is capped on load too
    const big = makeCache(dir, { maxEntries: 50 }, clock).cache
    for (let i = 20; i < 40; i++) {
      big.remember([peer(i)])
      clock.t += 10
    }
    await big.save()
    expect((await readDoc(dir)).peers).toHaveLength(25)
    expect(idsOf(await makeCache(dir, { maxEntries: 3 }, clock).cache.load())).toEqual([ids[39], ids[38], ids[37]])
  })

  it('forget() removes a peer from disk, unless it is seen after (by this instance or another)', async () => {
    const dir = await tempDir()
    const clock = { t: 1_000_000 }
    const a = makeCache(dir, {}, clock).cache
    a.remember([peer(0), peer(1), peer(2)])
    await a.save()

    const b = makeCache(dir, {}, clock).cache
    clock.t += 100
    b.forget(ids[0])
    b.forget(ids[1])
    await b.save()
    expect(idsOf(await b.load())).toEqual([ids[2]])

    // a stale copy on disk (another process merged before the forget) does not bring it back either
    const stale = { peerId: ids[0], multiaddrs: [addr(0)], lastSeen: clock.t - 100 }
    await writeRaw(dir, { version: 1, peers: [stale, ...(await readDoc(dir)).peers] })
    b.remember([peer(3)])
    await b.save()
    expect(idsOf(await b.load())).toEqual([ids[3], ids[2]])

    // a newer sighting by another instance does (tombstones are per instance, not in the file)
    clock.t += 100
    const c = makeCache(dir, {}, clock).cache
    c.remember([peer(1)])
    await c.save()
    expect(idsOf(await b.load())).toEqual([ids[1], ids[3], ids[2]])
    await b.save()   // b's tombstone is older than c's sighting
    expect(idsOf(await b.load())).toEqual([ids[1], ids[3], ids[2]])

    // and remembering a peer again lifts the forget
    clock.t += 100
    b.remember([peer(0)])
    await b.save()
    expect(idsOf(await b.load())).toEqual([ids[0], ids[1], ids[3], ids[2]])
  })

  it('logs and resolves when the dir cannot be created', async () => {
    const base = await tempDir()
    await writeFile(join(base, 'a-file'), 'x')
    // a path below a regular file fails even for root
    const { cache, logs } = makeCache(join(base, 'a-file', 'state'))
    cache.remember([peer(0)])
    await expect(cache.save()).resolves.toBeUndefined()
    expect(logs).toHaveLength(1)
    expect(logs[0]).toContain('cannot create')
  })

  it('logs and resolves when the file cannot be replaced, leaving no temp file', async () => {
    const dir = await tempDir()
    await mkdir(join(dir, 'peers.json'))   // rename over a directory fails
    const { cache, logs } = makeCache(dir)
    cache.remember([peer(0)])
    await expect(cache.save()).resolves.toBeUndefined()
    expect(logs.some(l => l.includes('cannot write'))).toBe(true)
    expect(await readdir(dir)).toEqual(['peers.json'])
  })

  // root ignores permissions; the two tests above cover failing writes there
  it.skipIf(process.platform === 'win32' || process.getuid?.() === 0)('logs and resolves in a read-only dir', async () => {
    const dir = await tempDir()
    const { chmod } = await import('node:fs/promises')
    await chmod(dir, 0o500)
    try {
      const { cache, logs } = makeCache(dir)
      cache.remember([peer(0)])
      await expect(cache.save()).resolves.toBeUndefined()
      expect(logs.some(l => l.includes('cannot write'))).toBe(true)
    } finally {
      await chmod(dir, 0o700)
    }
  })
})
