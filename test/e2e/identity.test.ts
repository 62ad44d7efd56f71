// End-to-end: `--identity` keeps a peer's id across runs of the built CLI, and `--announce`
// puts an address in what the peer advertises (the seeding event, the share link).
import { readFile, stat, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, sha256File, tempDir, useProcessCleanup, writeRandomFile } from './procs.js'

useProcessCleanup()

const ANNOUNCED = '/ip4/203.0.113.7/tcp/4001'

describe('bitswarm --identity and --announce, end to end', () => {
  it('seed --identity F twice: the same peer id both times, F mode 0600; a get with its own identity fetches from it', async () => {
    const dir = await tempDir()
    const file = join(dir, 'data.bin')
    const want = await writeRandomFile(file, 200_000)
    const key = join(dir, 'keys', 'seeder.key')
    const args = ['seed', file, '--identity', key, '--listen', LOOPBACK, '--no-dht', '--state-dir', join(dir, 'state'), '--json']

    const first = new CliProc('seeder1', args, { cwd: dir })
    const one = await first.wait('seeding', 20_000)
    expect((await first.stop()).code).toBe(0)
    expect((await stat(key)).mode & 0o777).toBe(0o600)
    const id = peerIdFromPrivateKey(privateKeyFromProtobuf(await readFile(key))).toString()
    expect(one.peerId).toBe(id)

    const second = new CliProc('seeder2', [...args, '--announce', ANNOUNCED], { cwd: dir })
    const two = await second.wait('seeding', 20_000)
    expect(two.peerId).toBe(id)
    const addrs = two.multiaddrs as string[]
    expect(addrs[0]).toBe(`${ANNOUNCED}/p2p/${id}`)
    expect(String(two.link)).toContain(`pe=${ANNOUNCED}/p2p/${id}`)

    // a downloader with an identity of its own, from the seeder's loopback address
    const getKey = join(dir, 'getter.key')
    const bootstrap = addrs.find(a => a.startsWith('/ip4/127.0.0.1/')) as string
    const getter = new CliProc('getter', ['get', String(two.cid), '--out', join(dir, 'out'), '--bootstrap', bootstrap, '--identity', getKey,
      '--listen', LOOPBACK, '--no-dht', '--state-dir', join(dir, 'state-get'), '--json'], { cwd: dir })
    const started = await getter.wait('started', 20_000)
    expect(started.peerId).toBe(peerIdFromPrivateKey(privateKeyFromProtobuf(await readFile(getKey))).toString())
    const done = await getter.wait('complete', 20_000)
    expect(await sha256File(String(done.path))).toBe(want)
    expect((await getter.waitExit()).code).toBe(0)
  })

  it('refuses an identity file others may read (exit 1) and a bad --announce (exit 2), before any network use', async () => {
    const dir = await tempDir()
    const file = join(dir, 'data.bin')
    await writeRandomFile(file, 1000)
    const key = join(dir, 'open.key')
    await writeFile(key, 'whatever')
    await chmod(key, 0o644)
    const open = new CliProc('open-key', ['seed', file, '--identity', key, '--listen', LOOPBACK, '--no-dht', '--state-dir', join(dir, 'state')], { cwd: dir })
    expect((await open.waitExit()).code).toBe(1)
    expect(open.stderr.join('\n')).toMatch(/identity file .*open\.key may be read by others \(mode 0644\).*chmod 600/)

    const bad = new CliProc('bad-announce', ['seed', file, '--announce', `${ANNOUNCED}/p2p/12D3KooWG1YoataWQ5jdxB9L1ZyQ4JBBfHUoBg3A1HfHcaaff4rJ`, '--listen', LOOPBACK], { cwd: dir })
    expect((await bad.waitExit()).code).toBe(2)
    expect(bad.stderr.join('\n')).toMatch(/--announce .* must not contain \/p2p\//)
  })
})
