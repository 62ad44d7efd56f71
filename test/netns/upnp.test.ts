// `--upnp` against a real UPnP router: Debian's miniupnpd (nftables flavour) in home a's router
// namespace, on the namespaced internet of harness.ts. Needs root, `ip`, `iptables`, `nft` and
// /usr/sbin/miniupnpd (CI installs it: .ci/run); run with `npm run test:netns`.
//
//   internet 10.200.0.0/24: tracker, stun (two addresses), router-a (miniupnpd), router-b
//   home a 192.168.1.0/24:  a1 (seeder, --upnp)     home b 192.168.2.0/24: b1 (leecher)
//
// miniupnpd refuses to map anything when its internet address is private (10.200.0.x here: a
// test may use nothing else) unless a STUN check finds that address unfiltered from outside; so
// a small STUN server (RFC 3489's CHANGE-REQUEST: answers from its other address and port)
// stands on the internet, and router a lets its answers in.
import { accessSync, constants, existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLI, removeTempDirs, sha256File, tempDir, writeRandomFile } from '../e2e/procs.js'
import { createTopology, INTERNET_PREFIX, skipReason, type HostProc, type Topology } from './harness.js'

const MINIUPNPD = '/usr/sbin/miniupnpd'
const MiB = 1024 * 1024
const TRACKER_PORT = 8000
const STUN_PORTS = [3478, 3479]
// the STUN server's second address: above the harness's range for hosts (.1-.250)
const STUN_SECOND = `${INTERNET_PREFIX}.253`

/** Why this suite cannot run here, or undefined. */
function missing (): string | undefined {
  try { accessSync(MINIUPNPD, constants.X_OK) } catch { return `${MINIUPNPD} is not installed (apt-get install miniupnpd; CI does it in .ci/run)` }
  const version = spawnSync(MINIUPNPD, ['--version'], { encoding: 'utf8' })
  if (!/nftables/.test(`${version.stdout ?? ''}${version.stderr ?? ''}`)) return `${MINIUPNPD} is not the nftables flavour (miniupnpd-nftables), whose chains this suite sets up`
  if (spawnSync('nft', ['--version']).status !== 0) return '`nft` is missing (apt-get install nftables): it makes the chains miniupnpd adds its rules to'
  return undefined
}
function skip (): boolean {
  if (skipReason('test/netns (UPnP)')) return true
  const why = missing()
  if (why !== undefined) console.log(`[netns] skipping test/netns (UPnP): ${why}`)
  return why !== undefined
}
const SKIP = skip()

// STUN binding responses with MAPPED-ADDRESS, from the address and port CHANGE-REQUEST asks for:
// argv ip1 ip2 port1 port2; prints `listening` once its four sockets are bound
const STUN_SERVER = `
const dgram = require('dgram')
const [ip1, ip2, p1, p2] = process.argv.slice(1)
const socks = new Map()
let bound = 0
for (const ip of [ip1, ip2]) for (const port of [+p1, +p2]) {
  const s = dgram.createSocket('udp4')
  socks.set(ip + ':' + port, s)
  s.on('message', (msg, from) => {
    if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001) return
    let change = 0
    for (let o = 20; o + 4 <= msg.length; o += 4 + ((msg.readUInt16BE(o + 2) + 3) & ~3)) {
      if (msg.readUInt16BE(o) === 0x0003 && msg.readUInt16BE(o + 2) === 4) change = msg.readUInt32BE(o + 4)
    }
    const res = Buffer.alloc(32)
    res.writeUInt16BE(0x0101, 0); res.writeUInt16BE(12, 2); msg.copy(res, 4, 4, 20)
    res.writeUInt16BE(0x0001, 20); res.writeUInt16BE(8, 22); res.writeUInt8(1, 25); res.writeUInt16BE(from.port, 26)
    from.address.split('.').forEach((b, i) => { res.writeUInt8(+b, 28 + i) })
    const ip2use = change & 4 ? (ip === ip1 ? ip2 : ip1) : ip
    const port2use = change & 2 ? (port === +p1 ? +p2 : +p1) : port
    socks.get(ip2use + ':' + port2use).send(res, from.port, from.address)
  })
  s.bind(port, ip, () => { if (++bound === 4) console.log('listening') })
}
`

// the chains miniupnpd (nftables flavour) adds its rules to, in a table of their own: the
// router's NAT and firewall stay the harness's iptables rules (the ip family's tables)
const NFT_TABLES = `
table inet miniupnpd {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
  }
}
`

describe.skipIf(SKIP)('--upnp: a seeder behind a router that runs miniupnpd', () => {
  let t: Topology
  let routerDir: string
  let miniupnpd: HostProc

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
    routerDir = await mkdtemp(join(tmpdir(), 'bitswarm-upnp-router-'))
    t = await createTopology({ homes: ['a', 'b'], hosts: { tracker: 'internet', stun: 'internet', a1: 'a', b1: 'b' } })
    const router = t.routerOf('a')
    const mustExec = async (host: string, argv: string[], input?: string): Promise<void> => {
      const r = await t.exec(host, argv, { input })
      if (r.code !== 0) throw new Error(`${host}: ${argv.join(' ')}: exit ${String(r.code)}\n${r.stderr}`)
    }

    // the STUN server, on two addresses and two ports
    const stun = t.addressOf('stun')
    await mustExec('stun', ['ip', 'addr', 'add', `${STUN_SECOND}/24`, 'dev', 'eth0'])
    await t.spawn('stun', [process.execPath, '-e', STUN_SERVER, stun, STUN_SECOND, ...STUN_PORTS.map(String)], { name: 'stun server' })
      .waitLine(l => l === 'listening')

    // router a: miniupnpd's chains; its STUN check's answers (from the server's other address
    // and port, which conntrack does not take for replies) let in; and connections its port
    // mappings DNAT forwarded to the LAN (as the harness's forwardPort does for one port)
    await mustExec(router, ['nft', '-f', '-'], NFT_TABLES)
    for (const from of [stun, STUN_SECOND]) await mustExec(router, ['iptables', '-I', 'INPUT', '-i', 'wan', '-p', 'udp', '-s', from, '-j', 'ACCEPT'])
    await mustExec(router, ['iptables', '-A', 'FORWARD', '-i', 'wan', '-o', 'lan', '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'ACCEPT'])

    const conf = join(routerDir, 'miniupnpd.conf')
    await writeFile(conf, [
      'ext_ifname=wan',
      'listening_ip=lan',
      'http_port=0',
      'enable_upnp=yes',
      'enable_natpmp=no',
      'ipv6_disable=yes',
      'secure_mode=yes',
      'system_uptime=yes',
      // the internet address is private: miniupnpd maps only once STUN finds it unfiltered
      'ext_perform_stun=yes',
      `ext_stun_host=${stun}`,
      `ext_stun_port=${STUN_PORTS[0]}`,
      'upnp_table_name=miniupnpd',
      'upnp_nat_table_name=miniupnpd',
      `uuid=${randomUUID()}`,
      'allow 1024-65535 192.168.1.0/24 1024-65535',
      'deny 0-65535 0.0.0.0/0 0-65535',
      ''
    ].join('\n'))
    // in the foreground (-d), its log on stdout, so that the harness tracks it and ends it
    miniupnpd = t.spawn(router, ['sh', '-c', 'exec "$0" "$@" 2>&1', MINIUPNPD, '-d', '-f', conf, '-P', join(routerDir, 'miniupnpd.pid')], { name: 'miniupnpd@router-a' })
    await miniupnpd.waitLine(l => l.includes('HTTP listening on port'), 15_000)
    expect(miniupnpd.stdout.join('\n'), miniupnpd.describe()).toContain('Port forwarding is now enabled')
  })

  afterEach(async () => {
    await removeTempDirs()
  })

  afterAll(async () => {
    await t?.destroy()
    if (routerDir != null) await rm(routerDir, { recursive: true, force: true })
    await removeTempDirs()
  })

  /** `bitswarm …` in a host's namespace, its peer cache in `dir`. */
  function cli (host: string, name: string, args: string[], dir: string): HostProc {
    return t.spawn(host, [process.execPath, CLI, ...args], { name, cwd: dir, env: { ...process.env, BITSWARM_STATE_DIR: join(dir, `.state-${name}`) } })
  }

  /** miniupnpd's port forwarding rules (its DNAT chain) on router a. */
  async function redirects (): Promise<string> {
    return (await t.exec(t.routerOf('a'), ['nft', 'list', 'chain', 'inet', 'miniupnpd', 'prerouting_miniupnpd'])).stdout
  }

  it('the router forwards a port to the seeder, which announces it: a leecher behind another NAT connects directly; the mapping goes when the seeder stops', async () => {
    const dir = await tempDir('bitswarm-netns-upnp-')
    const file = join(dir, 'mapped.bin')
    const want = await writeRandomFile(file, 2 * MiB)
    const tracker = cli('tracker', 'tracker', ['tracker', '--host', t.addressOf('tracker'), '--port', String(TRACKER_PORT), '--json'], dir)
    const announce = String((await tracker.wait('listening', 15_000)).announce)

    // no --listen, no --announce, no port forwarded by hand: only --upnp
    const seeder = cli('a1', 'seeder@a1', ['seed', file, '--tracker', announce, '--no-dht', '--upnp', '--json'], dir)
    const upnp = await seeder.wait('upnp', 15_000)
    const routerA = t.publicAddressOf('a')
    expect(upnp.externalIp, seeder.describe()).toBe(routerA)
    const port = Number(upnp.internalPort)
    expect(port).toBeGreaterThanOrEqual(49152)
    expect(upnp.externalPort).toBe(port)
    const seeding = await seeder.wait('seeding', 30_000)
    const seederId = String(seeding.peerId)
    // the router's address comes first among the seeder's addresses
    expect((seeding.multiaddrs as string[])[0]).toBe(`/ip4/${routerA}/tcp/${port}/p2p/${seederId}`)
    expect(await redirects()).toContain(`dnat ip to ${t.addressOf('a1')}:${port}`)

    // the leecher asks for a mapping too: home b's router has no UPnP, so it says so and goes on
    const out = join(dir, 'out')
    const leecher = cli('b1', 'leecher@b1', ['get', String(seeding.cid), '--out', out, '--tracker', announce, '--no-dht', '--upnp', '--json', '--timeout', '20s'], dir)
    const peer = await leecher.wait('peer', 30_000, e => e.peerId === seederId)
    expect(peer.via, leecher.describe()).toBe('direct')
    const complete = await leecher.wait('complete', 30_000)
    expect(await leecher.waitExit(15_000), leecher.describe()).toEqual({ code: 0, signal: null })
    expect(await sha256File(String(complete.path))).toBe(want)
    expect(leecher.last('upnp')).toBeUndefined()
    expect(leecher.stderr.join('\n')).toMatch(/^upnp: no UPnP gateway answered within 3 s \(going on without a port mapping\)$/m)

    // stopped, the seeder deletes its mapping
    expect(await seeder.stop('SIGINT'), seeder.describe()).toEqual({ code: 0, signal: null })
    expect(await redirects()).not.toContain(`dport ${port} `)
    expect(miniupnpd.running, miniupnpd.describe()).toBe(true)
  }, 60_000)

  it('with a fixed --listen port, that port is the one forwarded (text output)', async () => {
    const dir = await tempDir('bitswarm-netns-upnp-')
    const file = join(dir, 'fixed.bin')
    await writeRandomFile(file, 64 * 1024)
    const port = 4005
    const seeder = cli('a1', 'seeder@a1', ['seed', file, '--listen', `/ip4/0.0.0.0/tcp/${port}`, '--no-dht', '--upnp'], dir)
    await seeder.waitLine(l => l === `upnp: ${t.publicAddressOf('a')}:${port} forwarded to this peer's port ${port}`, 15_000)
    await seeder.waitLine(l => l.startsWith('seeding '), 15_000)
    expect(await redirects()).toContain(`dnat ip to ${t.addressOf('a1')}:${port}`)
    expect(await seeder.stop('SIGINT'), seeder.describe()).toEqual({ code: 0, signal: null })
    expect(await redirects()).not.toContain(`dport ${port} `)
  })
})
