// Peers behind home NATs, on a namespaced "internet" (see harness.ts): the real CLI
// (dist/bitswarm.mjs) in network namespaces, each with its own address. Needs root, `ip` and
// `iptables`; run with `npm run test:netns` (kept out of `npm test`).
//
//   internet 10.200.0.0/24: tracker, inet (a host with a public-like address), router-a, router-b
//   home a 192.168.1.0/24:  a1, a2        home b 192.168.2.0/24: b1
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLI, removeTempDirs, sha256File, tempDir, writeRandomFile } from '../e2e/procs.js'
import { createTopology, skipReason, type HostProc, type Topology } from './harness.js'

// A seeder behind one NAT and a leecher behind another, with nothing but a tracker between
// them, cannot share the file (js-libp2p cannot punch TCP holes from Node, see STACK.md): the
// leecher says why and gives up. With a relay that carries data between them, they can.
const DOWNLOAD_ACROSS_TWO_NATS_SUCCEEDS = false

const MiB = 1024 * 1024
const TRACKER_PORT = 8000
const SKIP = skipReason('test/netns (NAT scenarios)')

/** Whether the built CLI knows `--announce` (being added in parallel; the test of it waits for it). */
function cliHasAnnounce (): boolean {
  if (SKIP || !existsSync(CLI)) return false
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 10_000 })
  return /--announce\b/.test(help.stdout ?? '')
}
const HAS_ANNOUNCE = cliHasAnnounce()

// a tiny TCP server: answers each connection with the address it sees, then closes
const SERVER = "const s=require('net').createServer(c=>{c.end(c.remoteAddress+'\\n')});s.listen(+process.argv[1],'0.0.0.0',()=>console.log('listening'))"
// a client: prints `connected <address the server saw>`, `error <code>` or `timeout`
const CLIENT = "const [h,p,ms]=process.argv.slice(1);const s=require('net').connect({host:h,port:+p});let d='';" +
  "setTimeout(()=>{console.log('timeout');process.exit(0)},+ms);s.on('data',b=>{d+=b});" +
  "s.on('end',()=>{console.log('connected '+d.trim());process.exit(0)});s.on('error',e=>{console.log('error '+e.code);process.exit(0)})"

describe.skipIf(SKIP)('NAT\'d homes on a namespaced internet', () => {
  let t: Topology

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
    t = await createTopology({
      homes: ['a', 'b'],
      hosts: { tracker: 'internet', inet: 'internet', a1: 'a', a2: 'a', b1: 'b' }
    })
  })

  afterEach(async () => {
    await t?.stopAll()
    await removeTempDirs()
  })

  afterAll(async () => {
    await t?.destroy()
    await removeTempDirs()
  })

  async function server (host: string, port: number): Promise<HostProc> {
    const p = t.spawn(host, [process.execPath, '-e', SERVER, String(port)], { name: `${host}: tcp server` })
    await p.waitLine(l => l === 'listening')
    return p
  }

  async function connect (from: string, ip: string, port: number, timeoutMs = 1500): Promise<string> {
    const r = await t.exec(from, [process.execPath, '-e', CLIENT, ip, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 10_000 })
    return r.stdout.trim()
  }

  /** `bitswarm …` in a host's namespace, its peer cache in `dir`. */
  function cli (host: string, name: string, args: string[], dir: string, env: Record<string, string> = {}): HostProc {
    return t.spawn(host, [process.execPath, CLI, ...args], {
      name,
      cwd: dir,
      env: { ...process.env, BITSWARM_STATE_DIR: join(dir, `.state-${name}`), ...env }
    })
  }

  async function startTracker (dir: string): Promise<string> {
    const tracker = cli('tracker', 'tracker', ['tracker', '--host', t.addressOf('tracker'), '--port', String(TRACKER_PORT), '--json'], dir)
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    expect(announce).toBe(`http://${t.addressOf('tracker')}:${TRACKER_PORT}/announce`)
    return announce
  }

  async function startSeeder (host: string, file: string, announce: string, port: number, dir: string, extra: string[] = []): Promise<{ seeder: HostProc, cid: string }> {
    const seeder = cli(host, `seeder@${host}`, ['seed', file, '--tracker', announce, '--listen', `/ip4/0.0.0.0/tcp/${port}`, '--no-dht', '--json', ...extra], dir)
    const seeding = await seeder.wait('seeding', 30_000)
    return { seeder, cid: String(seeding.cid) }
  }

  /** The tracker's counts for `cid`, asked from a host on the internet. */
  async function scrape (announce: string, cid: string): Promise<{ complete: number, incomplete: number } | undefined> {
    const url = `${announce.replace(/\/announce$/, '')}/scrape?manifest=${encodeURIComponent(cid)}`
    const src = 'fetch(process.argv[1]).then(r=>r.text()).then(t=>console.log(t),e=>console.log(JSON.stringify({error:String(e)})))'
    const r = await t.exec('inet', [process.execPath, '-e', src, url])
    const body = JSON.parse(r.stdout) as { files?: Record<string, { complete: number, incomplete: number }> }
    return body.files?.[cid]
  }

  /** Waits until the tracker counts a seeder of `cid` (its announce came through). */
  async function trackerKnowsSeeder (announce: string, cid: string): Promise<void> {
    const deadline = Date.now() + 15_000
    while ((await scrape(announce, cid))?.complete !== 1) {
      if (Date.now() > deadline) throw new Error(`the tracker never counted the seeder of ${cid}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }

  function getter (host: string, cid: string, announce: string, out: string, dir: string, timeout: string): HostProc {
    return cli(host, `leecher@${host}`, ['get', cid, '--out', out, '--tracker', announce, '--listen', '/ip4/0.0.0.0/tcp/0', '--no-dht', '--json', '--timeout', timeout], dir)
  }

  it('topology: homes reach the internet through their NAT, nothing unsolicited gets in, homes cannot reach each other', async () => {
    const [inet, a1, a2, b1] = ['inet', 'a1', 'a2', 'b1'].map(h => t.addressOf(h))
    const routerA = t.publicAddressOf('a')
    const routerB = t.publicAddressOf('b')
    await Promise.all([server('inet', 7000), server('a1', 7000), server('b1', 7000)])

    // a separate check: an internet host that routes home a's LAN at its router, as a neighbour
    // on the same segment could. The router's firewall must still drop it.
    expect((await t.exec('inet', ['ip', 'route', 'add', '192.168.1.0/24', 'via', routerA])).code).toBe(0)

    const [out, lan, inAtWan, inAtLan, aToB, aToRouterB] = await Promise.all([
      connect('a1', inet, 7000),
      connect('a2', a1, 7000),
      connect('inet', routerA, 7000),
      connect('inet', a1, 7000),
      connect('a1', b1, 7000),
      connect('a1', routerB, 7000)
    ]).finally(async () => { await t.exec('inet', ['ip', 'route', 'del', '192.168.1.0/24']) })
    // out through the NAT: the internet sees the router's address, not the LAN's
    expect(out).toBe(`connected ${routerA}`)
    // inside one home: direct, no NAT
    expect(lan).toBe(`connected ${a2}`)
    // unsolicited from the internet: silently dropped (a timeout, not a refusal)
    expect(inAtWan).toBe('timeout')
    expect(inAtLan).toBe('timeout')
    // home to home: a private address is not routed, a router's public one lets nothing in
    expect(aToB).toMatch(/^(timeout$|error E)/)
    expect(aToRouterB).toBe('timeout')
  })

  it('a leecher at home downloads from a seeder on the internet (it dials out through its NAT)', async () => {
    const dir = await tempDir('bitswarm-netns-')
    const file = join(dir, 'public.bin')
    const want = await writeRandomFile(file, 3 * MiB + 4321)
    const announce = await startTracker(dir)
    const { cid } = await startSeeder('inet', file, announce, 4001, dir)

    const out = join(dir, 'out')
    const leecher = getter('a1', cid, announce, out, dir, '20s')
    const complete = await leecher.wait('complete', 45_000)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    expect(complete.cid).toBe(cid)
    expect(complete.path).toBe(join(out, 'public.bin'))
    expect(await sha256File(String(complete.path))).toBe(want)
  })

  it(`a seeder in home a and a leecher in home b, only a tracker between them: ${DOWNLOAD_ACROSS_TWO_NATS_SUCCEEDS ? 'the download completes' : 'no download, get --timeout gives up with exit 1'}`, async () => {
    const dir = await tempDir('bitswarm-netns-')
    const file = join(dir, 'private.bin')
    const want = await writeRandomFile(file, 2 * MiB)
    const announce = await startTracker(dir)
    const { cid } = await startSeeder('a1', file, announce, 4001, dir)
    // the seeder is in the swarm (its announce left through its NAT), yet out of reach
    await trackerKnowsSeeder(announce, cid)

    const out = join(dir, 'out')
    const leecher = getter('b1', cid, announce, out, dir, '20s')
    const exit = await leecher.waitExit(45_000)
    if (DOWNLOAD_ACROSS_TWO_NATS_SUCCEEDS) {
      expect(exit, leecher.describe()).toEqual({ code: 0, signal: null })
      expect(await sha256File(String(leecher.last('complete')?.path))).toBe(want)
    } else {
      expect(exit, leecher.describe()).toEqual({ code: 1, signal: null })
      expect(leecher.last('timeout'), leecher.describe()).toBeDefined()
      // and it said why, and what would help, before giving up
      expect(leecher.stderr.join('\n'), leecher.describe()).toMatch(/tracker: 1 other peer in this swarm, none with an address we can dial: they are behind NATs.*--relay.*--announce/)
      expect(leecher.last('complete')).toBeUndefined()
      expect(existsSync(join(out, 'private.bin'))).toBe(false)
    }
  })

  it('a seeder in home a with a reservation on the relay beside the tracker serves a leecher in home b through it', async () => {
    const dir = await tempDir('bitswarm-netns-')
    const file = join(dir, 'relayed.bin')
    const want = await writeRandomFile(file, 3 * MiB)
    const tracker = cli('tracker', 'tracker', ['tracker', '--host', t.addressOf('tracker'), '--port', String(TRACKER_PORT), '--relay', '--relay-port', '4100', '--json'], dir)
    const listening = await tracker.wait('listening', 15_000)
    const announce = String(listening.announce)
    const relay = (listening.relay as string[])[0]
    expect(relay).toMatch(new RegExp(`^/ip4/${t.addressOf('tracker').replaceAll('.', '\\.')}/tcp/4100/p2p/`))
    const { seeder, cid } = await startSeeder('a1', file, announce, 4003, dir, ['--relay', relay])
    await trackerKnowsSeeder(announce, cid)

    const out = join(dir, 'out')
    const leecher = getter('b1', cid, announce, out, dir, '30s')
    const peer = await leecher.wait('peer', 30_000)
    expect(peer.via, leecher.describe()).toBe('relayed')
    const complete = await leecher.wait('complete', 45_000)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    expect(await sha256File(String(complete.path))).toBe(want)
    // the seeder knows it is reachable through the relay only
    const stats = await seeder.wait('stats', 15_000, e => e.reachability != null)
    expect(stats.reachability).toBe('relayed')
  })

  it('the tracker dies; a newcomer in home b finds the seeder in home a through the internet DHT, and fetches through a relay', async () => {
    const dir = await tempDir('bitswarm-netns-')
    const file = join(dir, 'dht.bin')
    const want = await writeRandomFile(file, 2 * MiB)
    // the namespaced internet stands in for public addresses (for tests only: see address-class.ts)
    const env = { BITSWARM_PUBLIC_RANGES: '10.200.0.0/24' }
    const tracker = cli('tracker', 'tracker', ['tracker', '--host', t.addressOf('tracker'), '--port', String(TRACKER_PORT), '--json'], dir)
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    // a relay of its own (one beside the tracker would die with it)
    const relayProc = cli('inet', 'relay@inet', ['relay', '--listen', `/ip4/${t.addressOf('inet')}/tcp/4101`, '--json'], dir)
    const relay = (((await relayProc.wait('relay', 15_000)).multiaddrs) as string[])[0]
    // a peer on the internet, reachable: a server of the internet DHT (it seeds a file of its own)
    const other = join(dir, 'other.bin')
    await writeRandomFile(other, 1000)
    const inet = cli('inet', 'dht@inet', ['seed', other, '--tracker', announce, '--listen', '/ip4/0.0.0.0/tcp/4010', '--dht', 'wan', '--json'], dir, env)
    const inetAddr = `/ip4/${t.addressOf('inet')}/tcp/4010/p2p/${String((await inet.wait('seeding', 30_000)).peerId)}`
    // the seeder at home: reachable through the relay only, a client of the internet DHT
    const seeder = cli('a1', 'seeder@a1', ['seed', file, '--tracker', announce, '--relay', relay, '--bootstrap', inetAddr,
      '--listen', '/ip4/0.0.0.0/tcp/4004', '--dht', 'wan', '--json'], dir, env)
    const cid = String((await seeder.wait('seeding', 30_000)).cid)
    await seeder.wait('stats', 30_000, e => (e.dht as { wan?: { provided?: boolean } } | undefined)?.wan?.provided === true)
    // the tracker goes away for good
    tracker.child.kill('SIGKILL')
    await tracker.waitExit(10_000)

    const out = join(dir, 'out')
    const leecher = cli('b1', 'leecher@b1', ['get', cid, '--out', out, '--tracker', announce, '--bootstrap', inetAddr,
      '--listen', '/ip4/0.0.0.0/tcp/0', '--dht', 'wan', '--json', '--timeout', '40s'], dir, env)
    const peer = await leecher.wait('peer', 45_000, e => e.peerId === seeder.last('seeding')?.peerId)
    expect(peer, leecher.describe()).toMatchObject({ source: 'dht', via: 'relayed' })
    const complete = await leecher.wait('complete', 45_000)
    expect(await sha256File(String(complete.path))).toBe(want)
  }, 120_000)

  // `--announce` is being added to the CLI: until the built CLI has it, this waits (skipped)
  it.skipIf(!HAS_ANNOUNCE)('a seeder in home a behind a forwarded port (--announce <router a>:port) serves a leecher in home b', async () => {
    const dir = await tempDir('bitswarm-netns-')
    const file = join(dir, 'forwarded.bin')
    const want = await writeRandomFile(file, 3 * MiB)
    const port = 4002
    await t.forwardPort('a', 'tcp', port, 'a2', port)
    const announce = await startTracker(dir)
    const { cid } = await startSeeder('a2', file, announce, port, dir, ['--announce', `/ip4/${t.publicAddressOf('a')}/tcp/${port}`])
    await trackerKnowsSeeder(announce, cid)

    const out = join(dir, 'out')
    const leecher = getter('b1', cid, announce, out, dir, '20s')
    const complete = await leecher.wait('complete', 45_000)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    expect(complete.cid).toBe(cid)
    expect(await sha256File(String(complete.path))).toBe(want)
  })
})
