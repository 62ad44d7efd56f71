/**
 * Issue 10, item 2: throw-away identities that handshake, say have-none and then only send
 * keep-alives filled a seeder's 50 session slots, and an honest `get` got no peer at all (and
 * the seeder did not say why). Useless sessions must yield their place to a newcomer.
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { idleIdentities } from '../helpers/attacker.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed, within } from '../helpers/testbed.js'

describe('idle identities filling the session slots', () => {
  const bed = useTestbed('idle', { tracker: true, base: { dht: false, trackerMinBackoff: 200 } })

  it('50 idle sessions that come back when dropped: an honest get still gets the seeder and the file; the seeder logs why', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(2 * 1024 * 1024))
    const logs: string[] = []
    const seeder = await start(Peer.seed(file, { ...base, log: (m) => logs.push(m) }))
    const idle = await idleIdentities({ peerId: seeder.peerId, addrs: seeder.multiaddrs, manifest: seeder.cid, count: 50, reconnectDelay: 1000 })
    bed.defer(async () => { await idle.stop() })
    // the setup, not the attack: fifty handshakes take longer on a loaded machine
    await expect.poll(() => seeder.stats().peers, { timeout: 20_000 }).toBe(50)

    const leecher = await start(Peer.get(seeder.cid.toString(), join(dir, 'out'), base))
    const d = await within(completed(leecher), 40_000, () => `no download in 40 s (leecher has ${leecher.stats().peers} peers; seeder log: ${logs.slice(-3).join(' | ')})`)
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    expect(logs.join('\n')).toMatch(/evict/)
    // the evicted came back (and took the place of other idle ones), and the seeder never
    // held more than it may
    // (the attacker may see its close a moment after the leecher completes)
    await expect.poll(() => idle.closedByPeer, { timeout: 10_000 }).toBeGreaterThan(0)
    expect(seeder.stats().peers).toBeLessThanOrEqual(50)
  }, 60_000)
})
