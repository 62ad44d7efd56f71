/**
 * Issue 10 item 5, unbounded partial pieces: a peer that sends every block of 64 MiB pieces but
 * the last kept one buffer per piece alive in the leecher, with no cap (1.46 GiB RSS). The
 * leecher here is a real `bitswarm get` process (the built CLI: `npm run build` first); its
 * peak RSS (VmHWM) is read from /proc while the attack runs.
 */
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { encodeManifest, manifestCid, type Manifest } from '../../src/manifest/manifest.js'
import { createManifest, writeManifestFile } from '../../src/storage/manifest-file.js'
import { Peer } from '../../src/peer.js'
import { encodePiece, MessageType, type BlockSpec } from '../../src/wire/codec.js'
import { Attacker } from '../helpers/attacker.js'
import { completed, LOOPBACK as LOOPBACK_ADDRS, sha256File } from '../helpers/peers.js'
import { runScript } from '../helpers/wire-script.js'
import { CliProc, LOOPBACK, tempDir, useProcessCleanup } from '../e2e/procs.js'

const MiB = 1024 * 1024
const PIECE = 64 * MiB
const BLOCK = 65536
/** the defence's promise (issue 10): a leecher under this attack stays below this peak RSS */
const RSS_LIMIT = 250 * 1000 * 1000

useProcessCleanup()

async function peakRss (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /VmHWM:\s+(\d+) kB/.exec(status)
  if (kb == null) throw new Error(`no VmHWM in /proc/${pid}/status`)
  return Number(kb[1]) * 1024
}

describe('hostile: partial pieces', () => {
  it('a peer that withholds the last block of every 64 MiB piece does not blow up the leecher\'s memory', async () => {
    const dir = await tempDir('bitswarm-partial-')
    // 20 pieces of 64 MiB: the hashes are random, no piece will ever verify
    const count = 20
    const manifest: Manifest = { version: 1, name: 'big.bin', length: count * PIECE, pieceLength: PIECE, pieces: randomBytes(count * 32) }
    const bytes = encodeManifest(manifest)
    const cid = await manifestCid(bytes)
    const manifestPath = join(dir, 'big.bin.bitswarm')
    await writeManifestFile(manifestPath, bytes)

    const leecher = new CliProc('leecher', [
      'get', manifestPath, '--out', join(dir, 'out'), '--tracker', 'http://127.0.0.1:9/announce', '--no-dht',
      '--listen', LOOPBACK, '--json', '--stats-interval', '1'
    ], { cwd: dir })
    const started = await leecher.wait('started', 30_000)
    const pid = leecher.child.pid as number

    const attacker = await Attacker.create()
    const queue: BlockSpec[] = []
    let sent = 0
    let stopped = false
    try {
      const conn = await attacker.connect(String(started.peerId), (started.multiaddrs as string[]))
      conn.handshake(cid)
      conn.send({ type: MessageType.HaveAll })
      conn.send({ type: MessageType.Unchoke })
      const filler = new Uint8Array(BLOCK).fill(0x5a)
      // every block but the last of each piece, written with backpressure (the attacker is in
      // this test process: it must not buffer the gigabytes itself)
      let wake: (() => void) | undefined
      const script = runScript(conn, (m) => {
        if (m.type !== MessageType.Request || m.offset + m.length >= PIECE) return
        queue.push(m)
        wake?.()
      })
      const pump = (async () => {
        while (!stopped && !conn.closed) {
          const b = queue.shift()
          if (b === undefined) { await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 200) }); continue }
          sent += b.length
          if (!conn.stream.send(encodePiece(b.piece, b.offset, filler.subarray(0, b.length)))) await conn.stream.onDrain().catch(() => {})
        }
      })()

      let peak = 0
      // the leecher has stopped asking well within this (about a second at loopback speed)
      const deadline = Date.now() + 12_000
      while (Date.now() < deadline && leecher.running) {
        peak = Math.max(peak, await peakRss(pid))
        if (peak > RSS_LIMIT) break // proven: no need to let it eat the machine
        await new Promise(resolve => setTimeout(resolve, 250))
      }
      peak = Math.max(peak, await peakRss(pid).catch(() => 0))
      stopped = true
      script.stop()
      await pump
      console.log(`partial pieces: attacker sent ${(sent / MiB).toFixed(0)} MiB; leecher peak RSS (VmHWM) ${(peak / MiB).toFixed(1)} MiB`)
      expect(leecher.running, leecher.describe()).toBe(true)
      // the budget for pieces being assembled: no second 64 MiB piece was started
      expect(sent).toBeLessThan(2 * PIECE)
      expect(peak, `leecher peak RSS ${(peak / MiB).toFixed(1)} MiB after the attacker sent ${(sent / MiB).toFixed(0)} MiB`).toBeLessThan(RSS_LIMIT)
    } finally {
      stopped = true
      await attacker.stop()
    }
  }, 60_000)

  it('a peer that withholds the last block of each piece it is asked for does not hold the download up', async () => {
    const dir = await tempDir('bitswarm-withhold-')
    const file = join(dir, 'data.bin')
    const content = randomBytes(4 * MiB)
    await writeFile(file, content)
    const made = await createManifest(file, { pieceLength: 256 * 1024 })
    const manifestPath = join(dir, 'data.bin.bitswarm')
    await writeManifestFile(manifestPath, made.bytes)
    const base = { listen: LOOPBACK_ADDRS, trackers: ['http://127.0.0.1:9/announce'], stateDir: false as const, dht: false, choker: { rechokeInterval: 500, optimisticInterval: 1000 } }
    const peers: Peer[] = []
    const attacker = await Attacker.create()
    try {
      const seeder = await Peer.seed(file, { ...base, manifestPath, maxUploadRate: 2 * MiB })
      peers.push(seeder)
      await seeder.start()
      const leecher = await Peer.get(manifestPath, join(dir, 'out'), base)
      peers.push(leecher)
      const done = completed(leecher)
      const t0 = Date.now()
      await leecher.start()
      // the attacker first, so that it is asked for pieces before the seeder is there
      const conn = await attacker.connect(leecher.peerId, leecher.multiaddrs)
      conn.handshake(made.cid)
      conn.send({ type: MessageType.HaveAll })
      conn.send({ type: MessageType.Unchoke })
      let withheld = 0
      runScript(conn, (m) => {
        if (m.type !== MessageType.Request) return
        if (m.offset + m.length >= 256 * 1024) { withheld++; return }
        // the data is right (from the real file), so only the withholding is on trial
        const at = m.piece * 256 * 1024 + m.offset
        conn.send(encodePiece(m.piece, m.offset, content.subarray(at, at + m.length)).subarray())
      })
      await new Promise(resolve => setTimeout(resolve, 500))
      leecher.swarm?.addPeers([{ peerId: seeder.peerId, multiaddrs: seeder.multiaddrs.map(a => a.split('/p2p/')[0]) }], 'bootstrap')
      const d = await Promise.race([done, new Promise<never>((_resolve, reject) => {
        // a withheld request used to wait out the 30 s request timeout
        setTimeout(() => { reject(new Error(`not complete after 25 s: ${JSON.stringify(leecher.stats())}; ${withheld} requests withheld`)) }, 25_000).unref()
      })])
      console.log(`withholding peer: ${withheld} requests withheld; download took ${Date.now() - t0} ms`)
      expect(withheld).toBeGreaterThan(0)
      expect(await sha256File(d.path)).toBe(await sha256File(file))
    } finally {
      await attacker.stop()
      await Promise.all(peers.map(async p => { await p.stop() }))
    }
  }, 60_000)
})
