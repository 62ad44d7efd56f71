// `--dht` on the command line: real `bitswarm` processes (the built dist/bitswarm.mjs) on
// 127.0.0.1. BITSWARM_PUBLIC_RANGES (for tests only) makes 127.0.0.0/8 "the internet", as the
// network-namespace tests do with 10.200.x: the WAN DHT then serves and carries the swarm.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, sha256File, tempDir, useProcessCleanup, writeRandomFile } from './procs.js'

useProcessCleanup()

/** a CliProc started with extra environment variables (spawn copies process.env at once) */
function withEnv (env: Record<string, string>, make: () => CliProc): CliProc {
  const saved = Object.fromEntries(Object.keys(env).map(k => [k, process.env[k]]))
  Object.assign(process.env, env)
  try {
    return make()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) Reflect.deleteProperty(process.env, k)
      else process.env[k] = v
    }
  }
}

describe('bitswarm --dht', () => {
  it('--dht off and --no-dht run no DHT; stats say so', async () => {
    const dir = await tempDir()
    const file = join(dir, 'off.bin')
    await writeRandomFile(file, 10_000)
    for (const flags of [['--dht', 'off'], ['--no-dht']]) {
      const p = new CliProc('seeder', ['seed', file, '--listen', LOOPBACK, '--json', '--stats-interval', '0.2', ...flags], { cwd: dir })
      const stats = await p.wait('stats', 20_000)
      expect(stats.dht, p.describe()).toEqual({ routingTable: 0, provided: false, mode: 'off' })
      p.child.kill('SIGINT')
      expect(await p.waitExit(15_000)).toEqual({ code: 0, signal: null })
    }
  })

  it('--dht wan with 127.0.0.0/8 called public: a leecher finds the seeder through the WAN DHT alone', async () => {
    const dir = await tempDir()
    const env = { BITSWARM_PUBLIC_RANGES: '127.0.0.0/8' }
    const wan = ['--dht', 'wan', '--listen', LOOPBACK, '--json', '--stats-interval', '0.5']
    const fileA = await writeRandomFile(join(dir, 'a.bin'), 300_000)
    await writeRandomFile(join(dir, 'b.bin'), 1_000)
    const a = withEnv(env, () => new CliProc('seeder-a', ['seed', join(dir, 'a.bin'), ...wan], { cwd: dir }))
    const seedingA = await a.wait('seeding', 30_000)
    const stats = await a.wait('stats', 20_000)
    // a public address of its own: the WAN DHT serves; no LAN DHT runs
    expect(stats.dht, a.describe()).toMatchObject({ mode: 'wan', wan: { mode: 'server' } })
    expect((stats.dht as Record<string, unknown>).lan).toBeUndefined()
    // b knows a; the leecher knows only b, and b does not have a's file
    const b = withEnv(env, () => new CliProc('seeder-b', ['seed', join(dir, 'b.bin'), '--bootstrap', (seedingA.multiaddrs as string[])[0]!, ...wan], { cwd: dir }))
    const seedingB = await b.wait('seeding', 30_000)
    const out = join(dir, 'out')
    const get = withEnv(env, () => new CliProc('leecher', ['get', String(seedingA.cid), '--out', out, '--bootstrap', (seedingB.multiaddrs as string[])[0]!, ...wan], { cwd: dir }))
    const complete = await get.wait('complete', 45_000)
    expect(await sha256File(String(complete.path))).toBe(fileA)
    expect(get.events.filter(e => e.event === 'peer' && e.source === 'dht').map(e => e.peerId), get.describe()).toContain(seedingA.peerId)
    expect(await get.waitExit(15_000)).toEqual({ code: 0, signal: null })
  }, 90_000)
})
