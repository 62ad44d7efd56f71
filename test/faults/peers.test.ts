/**
 * Bad luck and bad peers, with real libp2p nodes on 127.0.0.1 in one process: a seeder that dies
 * mid-transfer, a peer whose data fails verification, a seeder whose file changed on disk.
 */
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Bitfield } from '../../src/bitfield.js'
import { Peer } from '../../src/peer.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed } from '../helpers/testbed.js'

describe('faults between peers', () => {
  const bed = useTestbed('faults', { tracker: true })

  it('the seeder dies mid-transfer: leechers that together hold every piece finish from each other', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(4 * 1024 * 1024))
    // the leechers trade slower than the seeder sends, so that between them they hold every
    // piece well before any of them holds them all
    const seeder = await start(Peer.seed(file, { ...base, maxUploadRate: 2 * 1024 * 1024 }))
    const leechers = await Promise.all([1, 2, 3].map(async i => await start(Peer.get(seeder.cid.toString(), join(dir, `out${i}`), { ...base, maxUploadRate: 256 * 1024 }))))
    const done = leechers.map(completed)
    // wait until the leechers between them hold every piece, though none holds all of them
    const n = seeder.swarm?.have.size ?? 0
    const union = (): number => {
      const u = new Bitfield(n)
      for (const l of leechers) for (let i = 0; i < n; i++) if (l.swarm?.have.get(i) === true) u.set(i)
      return u.count()
    }
    await expect.poll(union, { timeout: 30_000, interval: 20 }).toBe(n)
    expect(leechers.every(l => l.swarm?.have.isComplete() !== true)).toBe(true)
    await seeder.stop() // gone: no more pieces from it
    for (const d of await Promise.all(done)) expect(await sha256File(d.path)).toBe(await sha256File(file))
  }, 60_000)

  it('a peer serving corrupt data: its pieces are thrown away and fetched from others; it is cut off and banned', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(2 * 1024 * 1024))
    const good = await start(Peer.seed(file, { ...base, maxUploadRate: 512 * 1024 }))
    // a second seeder of the same manifest whose copy was changed on disk, told not to check it
    const copy = join(dir, 'copy', 'data.bin')
    await rm(join(dir, 'copy'), { recursive: true, force: true })
    await mkdir(join(dir, 'copy'))
    await copyFile(file, copy)
    const fh = await open(copy, 'r+')
    await fh.write(randomBytes(2 * 1024 * 1024), 0, 2 * 1024 * 1024, 0)
    await fh.close()
    const bad = await start(Peer.seed(copy, { ...base, manifestPath: good.manifestPath, skipVerify: true }))
    expect(bad.cid.toString()).toBe(good.cid.toString())

    const leecher = await start(Peer.get(good.cid.toString(), join(dir, 'out'), base))
    const d = await completed(leecher)
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    const s = leecher.stats()
    expect(s.hashFailures).toBeGreaterThan(0)
    // it came back (the tracker names it again each second) and was caught again: banned
    expect(s.banned).toBe(1)
  }, 60_000)

  it('a seeder checks its file against the manifest it made earlier, and serves only what matches', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(1024 * 1024))
    const first = await start(Peer.seed(file, base))
    const manifestPath = first.manifestPath as string
    await first.stop()
    // change 100 bytes in the middle: the pieces they fall in no longer match
    const fh = await open(file, 'r+')
    await fh.write(randomBytes(100), 0, 100, 500_000)
    await fh.close()
    const logs: string[] = []
    const again = await start(Peer.seed(file, { ...base, log: (m) => logs.push(m) }))
    expect(again.cid.toString()).toBe(first.cid.toString())
    expect(again.manifestPath).toBe(manifestPath)
    const have = again.swarm?.have as Bitfield
    expect(have.size - have.count()).toBe(1)
    expect(logs.join('\n')).toMatch(/1 of \d+ pieces do not match/)
  }, 30_000)
})
