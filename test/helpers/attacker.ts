/**
 * A hostile peer for tests: a real libp2p node (TCP + Noise + Yamux on 127.0.0.1) that speaks
 * our wire protocol by hand, so a test can send exactly the messages an attacker would — a
 * garbage block, a handshake then silence, a flood of rejects — and see how a real Peer copes.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { MANIFEST_PROTOCOL } from '../../src/exchange/exchange.js'
import { createNode, type BitswarmNode } from '../../src/node.js'
import { encodeHandshake, encodeMessage, WIRE_PROTOCOL, WireDecoder, type WireMessage } from '../../src/wire/codec.js'
import { LOOPBACK } from './peers.js'

/** One wire stream driven by hand: `send` frames, read what the other end says from `messages`. */
export class WireConn {
  readonly messages: WireMessage[] = []
  closed = false
  private readonly waiters = new Set<() => void>()

  constructor (readonly stream: Stream) {
    const decoder = new WireDecoder()
    stream.addEventListener('close', () => { this.closed = true; this.wake() })
    void (async () => {
      try {
        for await (const chunk of stream) {
          for (const m of decoder.decode(chunk)) this.messages.push(m)
          this.wake()
        }
      } catch {}
      this.closed = true
      this.wake()
    })()
  }

  /** Sends one message (or raw bytes). */
  send (msg: WireMessage | Uint8Array): void {
    if (this.closed) return
    try {
      this.stream.send(msg instanceof Uint8Array ? msg : encodeMessage(msg))
    } catch {}
  }

  handshake (manifest: CID | Uint8Array): void {
    this.send(encodeHandshake(manifest instanceof Uint8Array ? manifest : manifest.bytes))
  }

  /** Resolves with the first received message (from `from` on) that matches, or rejects after `ms`. */
  async next (match: (m: WireMessage) => boolean, from = 0, ms = 10_000): Promise<WireMessage> {
    const deadline = Date.now() + ms
    for (;;) {
      for (let i = from; i < this.messages.length; i++) if (match(this.messages[i])) return this.messages[i]
      if (this.closed) throw new Error('wire stream closed')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timed out waiting for a wire message')
      await new Promise<void>(resolve => {
        const t = setTimeout(() => { this.waiters.delete(done); resolve() }, left)
        const done = (): void => { clearTimeout(t); this.waiters.delete(done); resolve() }
        this.waiters.add(done)
      })
    }
  }

  close (): void {
    this.closed = true
    this.stream.abort(new Error('attacker hangs up'))
  }

  private wake (): void {
    for (const w of [...this.waiters]) w()
  }
}

export interface AttackerInit {
  /** answer manifest requests for this CID with these bytes */
  manifest?: { cid: CID, bytes: Uint8Array }
  /** called for each wire stream another peer opens to us */
  onInbound?: (conn: WireConn, remotePeer: string) => void
}

/** A hostile libp2p node; `stop()` it in afterEach. */
export class Attacker {
  private constructor (readonly node: BitswarmNode) {}

  static async create (init: AttackerInit = {}): Promise<Attacker> {
    const node = await createNode({ listen: LOOPBACK, privateKey: await generateKeyPair('Ed25519') })
    await node.start()
    const a = new Attacker(node)
    if (init.onInbound != null) {
      const onInbound = init.onInbound
      await node.handle(WIRE_PROTOCOL, (stream, connection) => { onInbound(new WireConn(stream), connection.remotePeer.toString()) }, { maxInboundStreams: 4 })
    }
    if (init.manifest != null) {
      const { cid, bytes } = init.manifest
      const { serveManifests } = await import('../../src/exchange/exchange.js')
      await serveManifests(node, (c) => c === cid.toString() ? bytes : undefined, () => {})
    }
    return a
  }

  get peerId (): string {
    return this.node.peerId.toString()
  }

  /** Our dialable addresses, without /p2p/<id>. */
  get addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString().split('/p2p/')[0])
  }

  /** Opens a wire stream to a peer at `addrs` (multiaddrs with or without /p2p). */
  async connect (peerId: string, addrs: string[]): Promise<WireConn> {
    const id = peerIdFromString(peerId)
    await this.node.peerStore.merge(id, { multiaddrs: addrs.map(a => multiaddr(a.split('/p2p/')[0])) })
    const stream = await this.node.dialProtocol(id, WIRE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    return new WireConn(stream)
  }

  async stop (): Promise<void> {
    await Promise.resolve(this.node.stop()).catch(() => {})
  }
}

export { MANIFEST_PROTOCOL }

// --- issue 10 items 2 and 3: idle identities and silent sockets ---------------------------------

export interface SilentSocketsInit {
  /** the TCP port on 127.0.0.1 to connect to */
  port: number
  /** sockets kept open at once */
  count: number
  /** ms between the first opens (default 250) */
  openInterval?: number
  /** ms to wait before reopening a dropped socket (default 20: at once, but not a busy loop) */
  reopenDelay?: number
}

/** Raw TCP sockets that connect and never send a byte, reopened when dropped; `stop()` them. */
export interface SilentSockets {
  /** connected now */
  readonly open: number
  /** connections made so far */
  readonly opened: number
  stop: () => void
}

export function silentSockets (init: SilentSocketsInit): SilentSockets {
  const delay = init.reopenDelay ?? 20
  const sockets = new Set<import('node:net').Socket>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  let stopped = false
  let open = 0
  let opened = 0
  const later = (fn: () => void, ms: number): void => {
    const t = setTimeout(() => { timers.delete(t); fn() }, ms)
    timers.add(t)
  }
  const openOne = async (): Promise<void> => {
    const { connect } = await import('node:net')
    if (stopped) return
    const s = connect({ host: '127.0.0.1', port: init.port })
    sockets.add(s)
    let connected = false
    s.on('connect', () => { connected = true; open++; opened++ })
    s.on('data', () => {}) // read and ignore whatever the peer says; never answer
    s.on('error', () => {})
    s.on('close', () => {
      sockets.delete(s)
      if (connected) open--
      if (!stopped) later(() => { void openOne() }, delay)
    })
  }
  for (let i = 0; i < init.count; i++) later(() => { void openOne() }, i * (init.openInterval ?? 250))
  return {
    get open () { return open },
    get opened () { return opened },
    stop: () => {
      stopped = true
      for (const t of timers) clearTimeout(t)
      for (const s of sockets) s.destroy()
    }
  }
}

export interface IdleIdentitiesInit {
  /** the peer to fill: its id and addresses (with or without /p2p) */
  peerId: string
  addrs: string[]
  manifest: CID
  count: number
  /** open a new session (same identity) this many ms after one is closed; default: never */
  reconnectDelay?: number
  /** ms between keep-alives (default 5_000) */
  keepAliveInterval?: number
}

/**
 * Throw-away identities that each open a wire session, handshake, say have-none, and then only
 * send keep-alives: useless peers holding session slots. Lightweight nodes (TCP + Noise + Yamux,
 * no DHT) so that fifty fit in a test. `stop()` them.
 */
export interface IdleIdentities {
  /** wire sessions open now */
  readonly open: number
  /** sessions the target closed on us */
  readonly closedByPeer: number
  stop: () => Promise<void>
}

export async function idleIdentities (init: IdleIdentitiesInit): Promise<IdleIdentities> {
  const { createLibp2p } = await import('libp2p')
  const { tcp } = await import('@libp2p/tcp')
  const { noise } = await import('@chainsafe/libp2p-noise')
  const { yamux } = await import('@chainsafe/libp2p-yamux')
  const { encodeHaveNone, encodeKeepAlive } = await import('../../src/wire/codec.js')
  const target = peerIdFromString(init.peerId)
  const addrs = init.addrs.map(a => multiaddr(a.split('/p2p/')[0]))
  const nodes: Array<Awaited<ReturnType<typeof createLibp2p>>> = []
  const timers = new Set<ReturnType<typeof setTimeout>>()
  const watches = new Set<ReturnType<typeof setInterval>>()
  let stopped = false
  let open = 0
  let closedByPeer = 0
  const session = async (node: Awaited<ReturnType<typeof createLibp2p>>): Promise<void> => {
    if (stopped) return
    let conn: WireConn
    try {
      await node.peerStore.merge(target, { multiaddrs: addrs })
      conn = new WireConn(await node.dialProtocol(target, WIRE_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
    } catch {
      if (!stopped && init.reconnectDelay != null) later(() => { void session(node) }, init.reconnectDelay)
      return
    }
    open++
    conn.handshake(init.manifest)
    conn.send(encodeHaveNone())
    let lastKeepAlive = Date.now()
    // the peer may only half-close (its end done, ours still open): watch for the end of what it
    // sends, not only for the stream's close event
    const watch = setInterval(() => {
      if (conn.closed) {
        clearInterval(watch)
        open--
        if (stopped) return
        closedByPeer++
        conn.close()
        if (init.reconnectDelay != null) later(() => { void session(node) }, init.reconnectDelay)
        return
      }
      if (Date.now() - lastKeepAlive >= (init.keepAliveInterval ?? 5_000)) {
        lastKeepAlive = Date.now()
        conn.send(encodeKeepAlive())
      }
    }, 100)
    watches.add(watch)
  }
  const later = (fn: () => void, ms: number): void => {
    const t = setTimeout(() => { timers.delete(t); fn() }, ms)
    timers.add(t)
  }
  for (let i = 0; i < init.count; i++) {
    const node = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    nodes.push(node)
  }
  await Promise.all(nodes.map(async n => { await session(n) }))
  return {
    get open () { return open },
    get closedByPeer () { return closedByPeer },
    stop: async () => {
      stopped = true
      for (const t of timers) clearTimeout(t)
      for (const w of watches) clearInterval(w)
      await Promise.all(nodes.map(async n => { await Promise.resolve(n.stop()).catch(() => {}) }))
    }
  }
}
