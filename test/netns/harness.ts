// A namespaced "internet" for tests (not a test file itself): Linux network namespaces joined by
// veth pairs, built and always torn down by the test that asked for them.
//
//   internet: one namespace acting as the switch (a bridge, no address), and on it, each with one
//             leg: hosts (10.200.0.0/24) and the WAN side of every home's router
//   home k:   a LAN 192.168.k.0/24 (a bridge in the router's namespace) behind a router that
//             masquerades on its WAN, lets replies back in and drops everything unsolicited from
//             the internet, like a home router; `forwardPort` opens one port
//
// Nothing is created in the root namespace (veths are made directly inside the namespaces they
// join) and every address is one of the ranges above, inside namespaces that reach nothing else.
// Needs root, `ip` (iproute2) and `iptables` (Debian's, nf_tables backend): see `unavailable()`.
//
// Namespaces are named `bsn-<pid>-<start>-<n>-<host>` (pid and process start time in base 36):
// a run never collides with a parallel one, and a later run removes the namespaces (and the
// processes inside them) of runs whose process is gone.
import { execFile, execFileSync, spawn as spawnChild, type SpawnOptions } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { JsonProc } from '../helpers/json-proc.js'

export const INTERNET_PREFIX = '10.200.0'
const FAMILY = 'bsn'
const NAME = /^[a-z][a-z0-9]{0,11}$/

// ---------------------------------------------------------------------------------------------
// availability

function onPath (cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  return dirs.some((d) => {
    if (d === '') return false
    try { accessSync(join(d, cmd), constants.X_OK); return true } catch { return false }
  })
}

/** Why the netns tests cannot run here (one line), or undefined when they can. */
export function unavailable (): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces need it)'
  if (!onPath('ip')) return '`ip` (iproute2) is missing'
  if (!onPath('iptables')) return '`iptables` is missing (apt-get install -y iptables)'
  return undefined
}

/** True only as root on Linux with `ip` and `iptables` present. */
export function available (): boolean {
  return unavailable() === undefined
}

/** For `describe.skipIf(!available())`: prints one line saying why the suite is skipped. */
export function skipReason (suite: string): boolean {
  const why = unavailable()
  if (why !== undefined) console.log(`[netns] skipping ${suite}: ${why}`)
  return why !== undefined
}

// ---------------------------------------------------------------------------------------------
// commands

export interface ExecResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs a command in the root namespace; rejects with its stderr when it fails. */
async function run (argv: string[], input?: string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err != null) reject(new Error(`${argv.join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
    if (input !== undefined) child.stdin?.end(input)
  })
}

function runSync (argv: string[]): string {
  try {
    return execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString()
  } catch {
    return ''
  }
}

/** Start time (clock ticks since boot) of a process, from /proc; undefined if it is gone. */
function startTime (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

const OWNER = `${process.pid.toString(36)}-${Number(startTime(process.pid) ?? 0).toString(36)}`
const OURS = new RegExp(`^${FAMILY}-([0-9a-z]+)-([0-9a-z]+)-[0-9]+-[a-z0-9-]+$`)
let topologies = 0

function listNamespaces (text: string): string[] {
  return text.split('\n').map(l => l.trim().split(' ')[0]).filter(n => n !== '')
}

function killNamespacePids (ns: string): void {
  for (const p of runSync(['ip', 'netns', 'pids', ns]).split('\n')) {
    const pid = Number(p)
    if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
  }
}

/**
 * Removes the namespaces of our family whose owning process (pid and start time in the name)
 * no longer runs, after killing whatever still runs inside them. Never touches a namespace of
 * another name, nor one whose owner is alive.
 */
export function removeStale (): string[] {
  const removed: string[] = []
  for (const ns of listNamespaces(runSync(['ip', 'netns', 'list']))) {
    const m = OURS.exec(ns)
    if (m == null) continue
    const pid = parseInt(m[1], 36)
    const start = startTime(pid)
    if (start !== undefined && Number(start).toString(36) === m[2]) continue
    killNamespacePids(ns)
    runSync(['ip', 'netns', 'del', ns])
    removed.push(ns)
  }
  return removed
}

// ---------------------------------------------------------------------------------------------
// processes inside a namespace

export type { Exit, JsonEvent } from '../helpers/json-proc.js'

/**
 * A process started in a host's namespace by `Topology.spawn` (see JsonProc for what it reads
 * and waits for); the topology tracks it and ends it on `destroy`.
 */
export class HostProc extends JsonProc {}

// ---------------------------------------------------------------------------------------------
// the topology

export interface TopologyOptions {
  /** the homes' names (default ['a', 'b']); home k (1-based) gets 192.168.k.0/24 */
  homes?: string[]
  /** hosts to create at once: name -> 'internet' or a home's name */
  hosts?: Record<string, string>
}

interface Host {
  name: string
  ns: string
  address: string
  /** its interface towards the rest of the world (eth0, or a router's wan) */
  uplink: string
  home?: string
}

interface Home {
  name: string
  index: number
  router: Host
  lanPrefix: string
  nextHost: number
}

/** Live topologies of this process, for the exit handlers. */
const live = new Set<Topology>()

export class Topology {
  readonly prefix: string
  private readonly switchNs: string
  private readonly hosts = new Map<string, Host>()
  private readonly homes = new Map<string, Home>()
  private readonly procs = new Set<HostProc>()
  private readonly namespaces: string[] = []
  private nextInternet = 1
  private nextPort = 0
  private destroyed = false

  private constructor () {
    this.prefix = `${FAMILY}-${OWNER}-${topologies++}`
    this.switchNs = `${this.prefix}-net`
  }

  /** Builds the internet, the homes and the hosts; on any failure tears down what it made. */
  static async create (opts: TopologyOptions = {}): Promise<Topology> {
    const why = unavailable()
    if (why !== undefined) throw new Error(`network namespaces unavailable: ${why}`)
    removeStale()
    const t = new Topology()
    live.add(t)
    installExitHandlers()
    try {
      await t.addNamespace(t.switchNs)
      await t.ip(t.switchNs, 'link', 'add', 'br0', 'type', 'bridge')
      await t.ip(t.switchNs, 'link', 'set', 'br0', 'up')
      await t.sysctl(t.switchNs, 'net.bridge.bridge-nf-call-iptables=0', true)
      for (const home of opts.homes ?? ['a', 'b']) await t.addHome(home)
      for (const [name, where] of Object.entries(opts.hosts ?? {})) await t.addHost(name, where)
    } catch (err) {
      await t.destroy()
      throw err
    }
    return t
  }

  private nsOf (name: string): string {
    return `${this.prefix}-${name}`
  }

  private host (name: string): Host {
    const h = this.hosts.get(name)
    if (h == null) throw new Error(`no host ${name} in ${this.prefix} (hosts: ${[...this.hosts.keys()].join(', ')})`)
    return h
  }

  private home (name: string): Home {
    const h = this.homes.get(name)
    if (h == null) throw new Error(`no home ${name} in ${this.prefix}`)
    return h
  }

  private async ip (ns: string, ...args: string[]): Promise<void> {
    await run(['ip', '-n', ns, ...args])
  }

  private async sysctl (ns: string, setting: string, optional = false): Promise<void> {
    try {
      await run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', setting])
    } catch (err) {
      if (!optional) throw err
    }
  }

  private async addNamespace (ns: string): Promise<void> {
    await run(['ip', 'netns', 'add', ns])
    this.namespaces.push(ns)
    await this.ip(ns, 'link', 'set', 'lo', 'up')
    // IPv4 only: no link-local IPv6 chatter, no address outside the ranges made here
    await this.sysctl(ns, 'net.ipv6.conf.all.disable_ipv6=1', true)
    await this.sysctl(ns, 'net.ipv6.conf.default.disable_ipv6=1', true)
  }

  /** A veth pair made directly in its two namespaces (never in the root one), both ends up. */
  private async veth (nsA: string, nameA: string, nsB: string, nameB: string): Promise<void> {
    await run(['ip', 'link', 'add', nameA, 'netns', nsA, 'type', 'veth', 'peer', 'name', nameB, 'netns', nsB])
    await this.ip(nsA, 'link', 'set', nameA, 'up')
    await this.ip(nsB, 'link', 'set', nameB, 'up')
  }

  /** A leg on the internet's switch for `ns`, named `ifname` inside it; returns its address. */
  private async attachToInternet (ns: string, ifname: string): Promise<string> {
    const n = this.nextInternet++
    if (n > 250) throw new Error('the internet segment is full')
    const port = `p${this.nextPort++}`
    await this.veth(this.switchNs, port, ns, ifname)
    await this.ip(this.switchNs, 'link', 'set', port, 'master', 'br0')
    const address = `${INTERNET_PREFIX}.${n}`
    await this.ip(ns, 'addr', 'add', `${address}/24`, 'dev', ifname)
    // the "internet" has no upstream: everything off the segment is just unreachable there
    await this.ip(ns, 'route', 'add', 'default', 'dev', ifname)
    return address
  }

  /** A home: a router namespace with a WAN leg on the internet and a LAN bridge behind NAT. */
  async addHome (name: string): Promise<void> {
    if (!NAME.test(name)) throw new Error(`home name ${name}: lower-case letters and digits, 12 at most`)
    if (this.homes.has(name)) throw new Error(`home ${name} exists`)
    const index = this.homes.size + 1
    if (index > 250) throw new Error('too many homes')
    const routerName = `router-${name}`
    const ns = this.nsOf(routerName)
    await this.addNamespace(ns)
    const wan = await this.attachToInternet(ns, 'wan')
    const lanPrefix = `192.168.${index}`
    await this.ip(ns, 'link', 'add', 'lan', 'type', 'bridge')
    await this.ip(ns, 'addr', 'add', `${lanPrefix}.1/24`, 'dev', 'lan')
    await this.ip(ns, 'link', 'set', 'lan', 'up')
    await this.sysctl(ns, 'net.ipv4.ip_forward=1')
    // hosts on one LAN talk through the bridge: keep bridged frames out of iptables
    await this.sysctl(ns, 'net.bridge.bridge-nf-call-iptables=0', true)
    // a home router: masquerade out, replies back in, nothing unsolicited from the WAN
    const rules = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':INPUT ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':POSTROUTING ACCEPT [0:0]',
      '-A POSTROUTING -o wan -j MASQUERADE',
      'COMMIT',
      '*filter',
      ':INPUT DROP [0:0]',
      ':FORWARD DROP [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      '-A INPUT -i lo -j ACCEPT',
      '-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-A INPUT -i lan -j ACCEPT',
      '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-A FORWARD -i lan -o lan -j ACCEPT',
      '-A FORWARD -i lan -o wan -j ACCEPT',
      'COMMIT',
      ''
    ].join('\n')
    await run(['ip', 'netns', 'exec', ns, 'iptables-restore'], rules)
    const router: Host = { name: routerName, ns, address: wan, uplink: 'wan', home: name }
    this.hosts.set(routerName, router)
    this.homes.set(name, { name, index, router, lanPrefix, nextHost: 10 })
  }

  /** A host with one address: on the internet (`where` = 'internet') or in the home `where`. */
  async addHost (name: string, where: string): Promise<void> {
    if (!NAME.test(name)) throw new Error(`host name ${name}: lower-case letters and digits, 12 at most`)
    if (this.hosts.has(name)) throw new Error(`host ${name} exists`)
    const ns = this.nsOf(name)
    await this.addNamespace(ns)
    if (where === 'internet') {
      const address = await this.attachToInternet(ns, 'eth0')
      this.hosts.set(name, { name, ns, address, uplink: 'eth0' })
      return
    }
    const home = this.home(where)
    const n = home.nextHost++
    if (n > 250) throw new Error(`home ${where} is full`)
    const port = `h${n}`
    await this.veth(home.router.ns, port, ns, 'eth0')
    await this.ip(home.router.ns, 'link', 'set', port, 'master', 'lan')
    const address = `${home.lanPrefix}.${n}`
    await this.ip(ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0')
    await this.ip(ns, 'route', 'add', 'default', 'via', `${home.lanPrefix}.1`)
    this.hosts.set(name, { name, ns, address, uplink: 'eth0', home: where })
  }

  /** The host's one address (a router's: its WAN address, the one the internet sees). */
  addressOf (host: string): string {
    return this.host(host).address
  }

  /** The name of a home's router, usable as a host (exec, spawn, shape). */
  routerOf (home: string): string {
    return this.home(home).router.name
  }

  /** The address the internet sees for a home (its router's WAN address). */
  publicAddressOf (home: string): string {
    return this.home(home).router.address
  }

  /** The namespace's name, for `ip netns exec` by hand. */
  namespaceOf (host: string): string {
    return this.host(host).ns
  }

  get hostNames (): string[] {
    return [...this.hosts.keys()]
  }

  /**
   * Opens `port` (tcp or udp) on a home's router WAN address towards `toHost`:`toPort` in that
   * home: a DNAT rule and the matching FORWARD accept, as a port-forwarding setting would.
   */
  async forwardPort (home: string, proto: 'tcp' | 'udp', port: number, toHost: string, toPort = port): Promise<void> {
    const h = this.home(home)
    const target = this.host(toHost)
    if (target.home !== home || target === h.router) throw new Error(`${toHost} is not a host in home ${home}`)
    const iptables = ['ip', 'netns', 'exec', h.router.ns, 'iptables']
    await run([...iptables, '-t', 'nat', '-A', 'PREROUTING', '-i', 'wan', '-p', proto, '--dport', String(port),
      '-j', 'DNAT', '--to-destination', `${target.address}:${toPort}`])
    await run([...iptables, '-A', 'FORWARD', '-i', 'wan', '-o', 'lan', '-p', proto, '-d', target.address,
      '--dport', String(toPort), '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'ACCEPT'])
  }

  /** Caps what `host` sends on its uplink to `rate` (tc's units: '8mbit', '1mbps') with tbf. */
  async shape (host: string, rate: string, opts: { burst?: string, latency?: string } = {}): Promise<void> {
    const h = this.host(host)
    await run(['ip', 'netns', 'exec', h.ns, 'tc', 'qdisc', 'replace', 'dev', h.uplink, 'root', 'tbf',
      'rate', rate, 'burst', opts.burst ?? '32kbit', 'latency', opts.latency ?? '400ms'])
  }

  /** Runs `argv` in `host`'s namespace to its end; never rejects for a non-zero exit. */
  async exec (host: string, argv: string[], opts: { timeoutMs?: number, input?: string, env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    const p = this.spawn(host, argv, { env: opts.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    if (opts.input !== undefined) p.child.stdin?.end(opts.input)
    const exit = await p.waitExit(opts.timeoutMs ?? 20_000)
    return { ...exit, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') }
  }

  /**
   * Starts `argv` in `host`'s namespace (`ip netns exec`, which becomes the command: the pid is
   * the command's). Tracked: `destroy` ends it if the test did not.
   */
  spawn (host: string, argv: string[], opts: SpawnOptions & { name?: string } = {}): HostProc {
    if (this.destroyed) throw new Error(`topology ${this.prefix} is torn down`)
    const h = this.host(host)
    const { name, ...spawnOpts } = opts
    const child = spawnChild('ip', ['netns', 'exec', h.ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts })
    const p = new HostProc(name ?? `${host}: ${argv[0]}`, argv, child)
    this.procs.add(p)
    void p.exited.then(() => { this.procs.delete(p) })
    return p
  }

  /** Processes started here and still running. */
  get running (): HostProc[] {
    return [...this.procs].filter(p => p.running)
  }

  /** Stops every process started here (SIGTERM, SIGKILL after `graceMs`). */
  async stopAll (graceMs = 3000): Promise<void> {
    await Promise.all([...this.procs].map(async p => { await p.stop('SIGTERM', graceMs) }))
  }

  /** Ends every process and removes every namespace made here (which removes their veths). */
  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    await this.stopAll(2000)
    for (const ns of [...this.namespaces].reverse()) {
      killNamespacePids(ns)
      await run(['ip', 'netns', 'del', ns]).catch(() => {})
    }
    this.namespaces.length = 0
    live.delete(this)
  }

  /** `destroy` for exit handlers: synchronous, best effort. */
  destroySync (): void {
    this.destroyed = true
    for (const p of this.procs) { try { p.child.kill('SIGKILL') } catch {} }
    for (const ns of [...this.namespaces].reverse()) {
      killNamespacePids(ns)
      runSync(['ip', 'netns', 'del', ns])
    }
    this.namespaces.length = 0
    live.delete(this)
  }
}

let handlersInstalled = false

/** On exit, SIGINT, SIGTERM or SIGHUP: remove whatever topology is still up, then go on dying. */
function installExitHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  const cleanup = (): void => { for (const t of [...live]) t.destroySync() }
  process.once('exit', cleanup)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanup()
      // if nobody else handles it, die of it as we would have
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.once(signal, onSignal)
  }
}

/** Builds a topology for the tests of one file; the caller destroys it in `afterAll`. */
export async function createTopology (opts: TopologyOptions = {}): Promise<Topology> {
  return await Topology.create(opts)
}
