/**
 * Issue 10, item 3: raw TCP sockets that connect to a peer's port and never say a word hold
 * libp2p's "pending inbound connection" slots until the upgrade times out; reopened as soon as
 * they are dropped, they kept a seeder's door shut to every honest peer (libp2p's defaults: 10
 * pending connections, 10 s upgrade timeout). An honest `get` must still fetch the manifest and
 * the file while the sockets keep coming.
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { silentSockets } from '../helpers/attacker.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed, within } from '../helpers/testbed.js'

describe('silent sockets at a peer\'s door', () => {
  const bed = useTestbed('silent', { tracker: true, base: { dht: false, trackerMinBackoff: 200 } })

  it('20 sockets that never speak, reopened as soon as they are dropped: an honest peer that knocks once gets the manifest and the file', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(4 * 1024 * 1024))
    // no tracker: the seeder cannot learn of the leecher and dial it, so the leecher's only
    // way in is through the seeder's door, and it knocks once (a bootstrap dial)
    const seeder = await start(Peer.seed(file, { ...base, trackers: [] }))
    const port = Number(/\/tcp\/(\d+)/.exec(seeder.multiaddrs[0])?.[1])
    // twice libp2p's default of 10 pending slots. Opened 4 a second, under libp2p's limit of 5
    // new connections a second per host: every socket here comes from 127.0.0.1 like the
    // honest peer's (an attacker on its own address that opens faster only uses up its own
    // address's budget). A dropped socket is back within 20 ms, before any honest peer.
    const flood = silentSockets({ port, count: 20, openInterval: 250, reopenDelay: 20 })
    bed.defer(() => { flood.stop() })
    await expect.poll(() => flood.opened, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(20)
    // knock once the first sockets have been dropped (upgrade timeout) and opened again
    await new Promise(resolve => setTimeout(resolve, 1_500))

    const leecher = await start(Peer.get(seeder.cid.toString(), join(dir, 'out'), { ...base, trackers: [], bootstrap: [seeder.multiaddrs[0]] }))
    const d = await within(completed(leecher), 40_000, () => `no download in 40 s (leecher has ${leecher.stats().peers} peers, manifest ${leecher.manifest != null ? 'fetched' : 'not fetched'})`)
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    // the attack went on all along: sockets were dropped and came back
    expect(flood.opened).toBeGreaterThan(20)
    expect(flood.open).toBeGreaterThan(0)
  }, 60_000)
})
