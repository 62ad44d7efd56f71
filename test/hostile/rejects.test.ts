/**
 * Issue 10 item 9: a peer that claims every piece and rejects every request was asked again at
 * once, every time: thousands of request/reject pairs a second for nothing. The leecher must back
 * off from it and count it as useless, and still finish from the honest seeder.
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Peer } from '../../src/peer.js'
import { MessageType } from '../../src/wire/codec.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed } from '../helpers/testbed.js'
import { runScript } from '../helpers/wire-script.js'

describe('hostile: a peer that rejects every request', () => {
  // no tracker: the leecher is given the seeder, so only the attack decides the outcome
  const bed = useTestbed('rejects', { base: { dht: false } })

  it('is asked ever less often, and the download completes from the honest seeder', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(4 * 1024 * 1024))
    // a slow seeder: the download lasts long enough to watch the rejecter for a while
    const seeder = await Peer.seed(file, { ...base, maxUploadRate: 512 * 1024 })
    await start(seeder)
    const leecher = await Peer.get(seeder.manifestPath as string, join(dir, 'out'), base)
    bed.keep(leecher)
    const done = completed(leecher)
    await leecher.start()
    await expect.poll(() => leecher.swarm != null, { timeout: 20_000, interval: 50 }).toBe(true)
    leecher.swarm?.addPeers([{ peerId: seeder.peerId, multiaddrs: seeder.multiaddrs.map(a => a.split('/p2p/')[0]) }], 'bootstrap')

    const a = await bed.attacker()
    const conn = await a.connect(leecher.peerId, leecher.multiaddrs)
    conn.handshake(seeder.cid)
    conn.send({ type: MessageType.HaveAll })
    conn.send({ type: MessageType.Unchoke })
    let requests = 0
    let interested = false
    const script = runScript(conn, (m) => {
      if (m.type === MessageType.Interested) interested = true
      if (m.type === MessageType.NotInterested) interested = false
      if (m.type !== MessageType.Request) return
      requests++
      conn.send({ type: MessageType.Reject, piece: m.piece, offset: m.offset, length: m.length })
    })
    bed.defer(() => { script.stop() })

    await new Promise(resolve => setTimeout(resolve, 6000))
    const seen = requests
    console.log(`rejecter was sent ${seen} requests in its first 6 s`)
    // before the fix: thousands a second. With backoff: a first pipeline, then a few probes.
    expect(seen, `requests in 6 s: ${seen}`).toBeLessThan(600)
    // useless: we no longer say we want anything from it
    expect(interested).toBe(false)
    const d = await done
    expect(await sha256File(d.path)).toBe(await sha256File(file))
  }, 60_000)
})
