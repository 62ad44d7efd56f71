/**
 * Issue 10 item 1, ban framing: hostile peers that claim every piece send one garbage block of a
 * piece and reject its other blocks, so the honest seeder sends the rest and the piece fails.
 * Blaming every sender of a failed piece banned the honest seeder and stalled the download.
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createManifest, writeManifestFile } from '../../src/storage/manifest-file.js'
import { Peer } from '../../src/peer.js'
import { shortId } from '../../src/session/session.js'
import { MessageType } from '../../src/wire/codec.js'
import type { Attacker } from '../helpers/attacker.js'
import { completed, sha256File } from '../helpers/peers.js'
import { useTestbed, within } from '../helpers/testbed.js'
import { fakeBlock, runScript } from '../helpers/wire-script.js'

describe('hostile: ban framing', () => {
  // no tracker: the leecher is given the seeder, so only the attack decides the outcome
  const bed = useTestbed('framing', { base: { dht: false } })

  it('two framers cannot get the honest seeder banned: the download completes and only the framers are blamed', async () => {
    const { dir, base, start } = bed
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(8 * 1024 * 1024))
    // 32 pieces of 4 blocks: room for a garbage block and three honest ones in each
    const made = await createManifest(file, { pieceLength: 256 * 1024 })
    const manifestPath = join(dir, 'data.bin.bitswarm')
    await writeManifestFile(manifestPath, made.bytes)
    const seeder = await Peer.seed(file, { ...base, manifestPath, maxUploadRate: 2 * 1024 * 1024 })
    await start(seeder)

    const logs: string[] = []
    const leecher = await Peer.get(manifestPath, join(dir, 'out'), { ...base, log: (m) => logs.push(m) })
    bed.keep(leecher)
    const done = completed(leecher)
    await leecher.start()
    await expect.poll(() => leecher.swarm != null, { timeout: 20_000, interval: 50 }).toBe(true)
    leecher.swarm?.addPeers([{ peerId: seeder.peerId, multiaddrs: seeder.multiaddrs.map(a => a.split('/p2p/')[0]) }], 'bootstrap')

    const attackers: Attacker[] = []
    for (let k = 0; k < 2; k++) {
      const a = await bed.attacker()
      attackers.push(a)
      const conn = await a.connect(leecher.peerId, leecher.multiaddrs)
      conn.handshake(made.cid)
      conn.send({ type: MessageType.HaveAll })
      conn.send({ type: MessageType.Unchoke })
      // the first block asked of each piece gets garbage, every other block of it a reject
      const framed = new Map<number, number>()
      const script = runScript(conn, (m) => {
        if (m.type !== MessageType.Request) return
        const first = framed.get(m.piece)
        if (first === undefined || first === m.offset) {
          framed.set(m.piece, m.offset)
          conn.send(fakeBlock(m.piece, m.offset, m.length))
        } else {
          conn.send({ type: MessageType.Reject, piece: m.piece, offset: m.offset, length: m.length })
        }
      })
      bed.defer(() => { script.stop() })
    }

    // stalled for good is the failure this test exists for: say so, with what the leecher saw
    const d = await within(done, 40_000, () => {
      const st = leecher.stats()
      return `stalled at ${st.have}/${st.pieces} pieces, ${st.banned} banned, ${st.hashFailures} hash failures:\n${logs.filter(l => /banning|failed its hash/.test(l)).slice(0, 12).join('\n')}\n(seeder is ${shortId(seeder.peerId)})`
    })
    expect(await sha256File(d.path)).toBe(await sha256File(file))
    const s = leecher.stats()
    expect(s.hashFailures).toBeGreaterThan(0) // the attack did take place
    expect(logs.join('\n')).not.toContain(`banning ${shortId(seeder.peerId)}`)
    // and each framer was caught by its own bad blocks
    for (const a of attackers) expect(logs.join('\n')).toMatch(new RegExp(`(closing session with|banning) ${shortId(a.peerId)}: .*bad`))
  }, 60_000)
})
