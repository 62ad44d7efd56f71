// Seed a file and download it again through the library, in one program, on 127.0.0.1.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { get, installPolyfills, seed } from 'bitswarm'

// libp2p v3 calls Promise.withResolvers, which Node 20 lacks: install it before any peer or
// libp2p node starts (on Node 22 and later this does nothing)
installPolyfills()

const dir = await mkdtemp(join(tmpdir(), 'bitswarm-example-'))
const file = join(dir, 'hello.bin')
const data = randomBytes(1_000_000)
await writeFile(file, data)

// everything below gives up after a minute
const signal = AbortSignal.timeout(60_000)

// hashes the file, writes hello.bin.bitswarm beside it and serves it until stopped; this machine
// only, no peer cache on disk, no DHT (the seeder's address is all the downloader needs)
const seeder = await seed(file, { listen: ['/ip4/127.0.0.1/tcp/0'], stateDir: false, dht: false, signal })
console.log(`seeding ${seeder.cid} as ${seeder.peerId}`)

try {
  // no tracker: the seeder's addresses (with /p2p/<id>) are the way into the swarm
  const result = await get(seeder.cid.toString(), join(dir, 'out'), {
    listen: ['/ip4/127.0.0.1/tcp/0'],
    stateDir: false,
    dht: false,
    bootstrap: seeder.multiaddrs,
    signal,
    onProgress: (event) => {
      if (event.type === 'peer:connect') console.log(`connected to ${event.detail.peerId} (${event.detail.source})`)
      if (event.type === 'progress') console.log(`${event.detail.have}/${event.detail.pieces} pieces`)
    }
  })
  const same = Buffer.compare(await readFile(result.path), data) === 0
  console.log(`${result.path}: ${result.bytes} bytes, ${same ? 'identical' : 'DIFFERENT'}`)
  if (!same) process.exitCode = 1
} finally {
  // get() stopped its own peer; the seeder runs until told
  await seeder.stop()
  await rm(dir, { recursive: true, force: true })
}
