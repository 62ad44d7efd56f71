/**
 * Baseline for bench/swarm.ts: one plain libp2p stream between two processes on the stack that
 * bitswarm uses (TCP + Noise + Yamux), no bitswarm code at all.
 *
 *   node dist/bench/raw-libp2p.js listen [<listen multiaddr>]
 *     prints {"event":"listening","multiaddr":"/ip4/…/p2p/…"}; then, for every incoming stream,
 *     counts the bytes (for await) until the sender closes it and prints
 *     {"event":"received","bytes":n,"ms":t} (t from the stream's opening to its last byte).
 *   node dist/bench/raw-libp2p.js send <multiaddr> <bytes>
 *     dials, opens one stream, sends <bytes> in 64 KiB chunks with backpressure
 *     (`if (!stream.send(buf)) await stream.onDrain()`), closes it, prints
 *     {"event":"sent","bytes":n,"ms":t} and exits.
 */
import '../src/polyfill.js'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'

const PROTOCOL = '/bitswarm-bench/raw/1.0.0'
const CHUNK = 64 * 1024

function emit (obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function node (listen: string[]): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

async function untilSignal (): Promise<void> {
  await new Promise<void>(resolve => {
    process.once('SIGINT', () => { resolve() })
    process.once('SIGTERM', () => { resolve() })
  })
}

async function listen (addr: string): Promise<void> {
  const n = await node([addr])
  await n.handle(PROTOCOL, async (stream) => {
    const t0 = performance.now()
    let bytes = 0
    try {
      for await (const chunk of stream) bytes += chunk.byteLength
      emit({ event: 'received', bytes, ms: performance.now() - t0 })
    } catch (err) {
      emit({ event: 'error', message: (err as Error).message, bytes })
    }
  }, { maxInboundStreams: 4 })
  emit({ event: 'listening', multiaddr: n.getMultiaddrs()[0]?.toString() })
  await untilSignal()
  await Promise.resolve(n.stop())
}

async function send (target: string, total: number): Promise<void> {
  const n = await node(['/ip4/127.0.0.1/tcp/0'])
  const t0 = performance.now()
  const stream = await n.dialProtocol(multiaddr(target), PROTOCOL)
  // a few distinct buffers, so nothing along the way can profit from one repeated chunk
  const bufs = Array.from({ length: 16 }, () => randomBytes(CHUNK))
  let sent = 0
  let i = 0
  while (sent < total) {
    const len = Math.min(CHUNK, total - sent)
    const buf = len === CHUNK ? bufs[i++ % bufs.length] : bufs[0].subarray(0, len)
    if (!stream.send(buf)) await stream.onDrain()
    sent += len
  }
  await stream.close()
  emit({ event: 'sent', bytes: sent, ms: performance.now() - t0 })
  await Promise.resolve(n.stop())
}

async function main (argv: string[]): Promise<void> {
  const [cmd, a, b] = argv
  if (cmd === 'listen') {
    await listen(a ?? '/ip4/127.0.0.1/tcp/0')
  } else if (cmd === 'send' && a != null && b != null && Number.isFinite(Number(b)) && Number(b) >= 0) {
    await send(a, Number(b))
  } else {
    process.stderr.write('usage: raw-libp2p listen [<multiaddr>] | send <multiaddr> <bytes>\n')
    process.exitCode = 2
  }
  setTimeout(() => process.exit(), 1000).unref()
}

await main(process.argv.slice(2))
