/**
 * Issue 10, item 7: an attacker who can write into --out (between runs or during one) must not
 * make a download write outside --out, nor leave wrong bytes under a name that `get` called
 * complete. Real peers (Peer.seed / Peer.get) and a real tracker on 127.0.0.1.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as dagCbor from '@ipld/dag-cbor'
import { Bitfield } from '../../src/bitfield.js'
import { Peer, type PeerOptions } from '../../src/peer.js'
import { createTrackerServer, type TrackerServer } from '../../tracker/server.js'
import { completed, LOOPBACK, sha256File } from '../helpers/peers.js'

const KiB = 1024
const MiB = 1024 * KiB

/** The first entry of `dir` whose name ends with `suffix`, as a path (temp files: part, resume). */
async function entryEndingWith (dir: string, suffix: string): Promise<string> {
  const hit = (await readdir(dir)).find(e => e.endsWith(suffix))
  if (hit === undefined) throw new Error(`no *${suffix} in ${dir}: ${(await readdir(dir)).join(', ')}`)
  return join(dir, hit)
}

describe('file integrity under a hostile --out', () => {
  let dir: string
  let tracker: TrackerServer
  const peers: Peer[] = []
  let base: PeerOptions

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitswarm-integrity-'))
    tracker = createTrackerServer({ host: '127.0.0.1', port: 0, interval: 1, minInterval: 1, statsInterval: 0, log: () => {} })
    await tracker.start()
    base = { listen: LOOPBACK, trackers: [tracker.announceUrl], stateDir: false, dht: false }
  })

  afterEach(async () => {
    await Promise.all(peers.splice(0).map(async p => { await p.stop() }))
    await tracker.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function make (p: Promise<Peer>): Promise<Peer> {
    const peer = await p
    peers.push(peer)
    return peer
  }

  async function seed (name: string, bytes: number, options: PeerOptions & { manifestPath?: string } = {}): Promise<{ seeder: Peer, want: string }> {
    const srcDir = await mkdtemp(join(dir, 'src-'))
    const file = join(srcDir, name)
    await writeFile(file, randomBytes(bytes))
    const seeder = await make(Peer.seed(file, { ...base, ...options }))
    await seeder.start()
    return { seeder, want: await sha256File(file) }
  }

  it('a symlink planted at the part file path is not followed out of --out', async () => {
    const { seeder, want } = await seed('data.bin', 1 * MiB)
    const cid = seeder.cid.toString()
    const victim = join(dir, 'victim.txt')
    await writeFile(victim, 'precious, outside --out')
    const victimHash = await sha256File(victim)
    const out = join(dir, 'out')
    await mkdir(out)
    // the old temporary name, the new ones: every link points at the victim
    for (const name of ['data.bin.bitswarm-part', 'data.bin.bitswarm-resume', `.bitswarm-${cid}.part`, `.bitswarm-${cid}.resume`]) {
      await symlink(victim, join(out, name))
    }
    const leecher = await make(Peer.get(seeder.manifestPath as string, out, base))
    const done = completed(leecher)
    await leecher.start()
    const d = await done
    expect(await sha256File(victim)).toBe(victimHash) // untouched
    expect((await lstat(d.path)).isFile()).toBe(true) // a regular file, not a link to elsewhere
    expect(await sha256File(d.path)).toBe(want)
  }, 60_000)

  it('a piece tampered with between runs (mtime restored) is fetched again, not called complete', async () => {
    const { seeder, want } = await seed('data.bin', 2 * MiB, { maxUploadRate: 512 * KiB })
    const out = join(dir, 'out')
    const first = await make(Peer.get(seeder.manifestPath as string, out, base))
    await first.start()
    await expect.poll(() => first.swarm?.have.count() ?? 0, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(2)
    await first.stop() // a clean stop: the resume record vouches for what is on disk
    const manifest = first.manifest
    if (manifest == null) throw new Error('no manifest')

    const part = await entryEndingWith(out, 'part')
    const record = JSON.parse(await readFile(await entryEndingWith(out, 'resume'), 'utf8')) as { pieces: string }
    const vouched = Bitfield.fromBytes(Math.ceil(manifest.length / manifest.pieceLength), Buffer.from(record.pieces, 'base64'))
    const piece = [...Array(vouched.size).keys()].find(i => vouched.get(i))
    if (piece === undefined) throw new Error('the record vouches for no piece')
    // flip one byte of a vouched-for piece, then put the timestamps back (touch -r keeps ns)
    const stamp = join(dir, 'stamp')
    await writeFile(stamp, '')
    await promisify(execFile)('touch', ['-r', part, stamp])
    const fh = await open(part, 'r+')
    const at = piece * manifest.pieceLength + 10
    const byte = new Uint8Array(1)
    await fh.read(byte, 0, 1, at)
    byte[0] ^= 0xff
    await fh.write(byte, 0, 1, at)
    await fh.close()
    await promisify(execFile)('touch', ['-r', stamp, part])

    const logs: string[] = []
    const second = await make(Peer.get(seeder.manifestPath as string, out, { ...base, log: (m) => logs.push(m) }))
    const done = completed(second)
    await second.start()
    const d = await done
    expect(await sha256File(d.path)).toBe(want)
    expect(logs.join('\n')).toMatch(/resume record; 1 of its pieces did not verify/)
  }, 60_000)

  it('a part file replaced during the run is not given the final name', async () => {
    const { seeder } = await seed('data.bin', 2 * MiB, { maxUploadRate: 512 * KiB })
    const out = join(dir, 'out')
    const leecher = await make(Peer.get(seeder.manifestPath as string, out, base))
    const outcome = completed(leecher).then(() => 'complete', (err: Error) => err.message)
    await leecher.start()
    await expect.poll(() => leecher.swarm?.have.count() ?? 0, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(1)
    const evil = join(dir, 'evil.bin')
    await writeFile(evil, randomBytes(2 * MiB))
    await rename(evil, await entryEndingWith(out, 'part'))
    expect(await outcome).toMatch(/replaced during the download/)
    await expect(lstat(join(out, 'data.bin'))).rejects.toMatchObject({ code: 'ENOENT' })
  }, 60_000)

  it('two downloads into one --out: a manifest named like the other\'s temp file cannot swap its bytes', async () => {
    // the attacker's download starts first and ends first; the victim's starts in between
    const attacker = await seed('data.bin.bitswarm-part', 512 * KiB, { maxUploadRate: 256 * KiB })
    const honest = await seed('data.bin', 4 * MiB, { maxUploadRate: 512 * KiB })
    const out = join(dir, 'out')
    const order: string[] = []
    const a = await make(Peer.get(attacker.seeder.manifestPath as string, out, base))
    const aDone = completed(a).then((d) => { order.push('attacker'); return d })
    await a.start()
    const v = await make(Peer.get(honest.seeder.manifestPath as string, out, base))
    const vDone = completed(v).then((d) => { order.push('victim'); return d })
    await v.start()
    const [ad, vd] = await Promise.all([aDone, vDone])
    expect(order).toEqual(['attacker', 'victim']) // the race the attack needs did happen
    expect(await sha256File(vd.path)).toBe(honest.want)
    expect(await sha256File(ad.path)).toBe(attacker.want)
  }, 60_000)

  it('a manifest named like our own temporary files is refused with a clear error', async () => {
    const honest = await seed('data.bin', 64 * KiB)
    // our own tools refuse to make such a manifest: the attacker encodes it by hand
    const evil = { version: 1, name: `.bitswarm-${honest.seeder.cid.toString()}.part`, length: 64 * KiB, pieceLength: 64 * KiB, pieces: new Uint8Array(32) }
    const evilPath = join(dir, 'evil.bitswarm')
    await writeFile(evilPath, dagCbor.encode(evil))
    const out = join(dir, 'out')
    // refused as the manifest is read, before anything is written (a fetched one: before the store opens)
    const outcome = await Peer.get(evilPath, out, base).then(async (p) => { await make(Promise.resolve(p)); return 'accepted' }, (err: Error) => err.message)
    expect(outcome).toMatch(/reserved/)
    expect(await readdir(dir)).not.toContain('out')
  }, 60_000)

  it('a 250-byte name downloads (name + temp suffix would exceed NAME_MAX)', async () => {
    const name = 'n'.repeat(246) + '.bin'
    const { seeder, want } = await seed(name, 100 * KiB, { manifestPath: join(dir, 'long.bitswarm') })
    const out = join(dir, 'out')
    const leecher = await make(Peer.get(seeder.manifestPath as string, out, base))
    const outcome = completed(leecher).then(d => d, (err: Error) => err)
    await leecher.start()
    const d = await outcome
    if (d instanceof Error) throw d
    expect(d.path).toBe(join(out, name))
    expect(await sha256File(d.path)).toBe(want)
  }, 60_000)
})
