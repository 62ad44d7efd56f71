/**
 * Baseline for bench/swarm.ts: one plain libp2p stream between two processes on the stack that
 * bitswarm uses (TCP + Noise + Yamux), no bitswarm code at all.
 *
 *   node dist/bench/raw-libp2p.js listen [<listen multiaddr>]
 *     prints {"event":"listening","multiaddr":"/ip4/…/p2p/…"}; then, for every incoming stream,
 *     reads an 8-byte length, counts the bytes that follow (for await) and, when all of them
 *     have arrived, prints {"event":"received","bytes":n,"ms":t} (t from the stream's opening to
 *     its last byte) and sends a one-byte acknowledgement.
 *   node dist/bench/raw-libp2p.js send <multiaddr> <bytes>
 *     dials, opens one stream, sends the length and then <bytes> in 64 KiB chunks with
 *     backpressure (`if (!stream.send(buf)) await stream.onDrain()`), waits for the
 *     acknowledgement (stopping the node earlier could cut off data still queued), prints
 *     {"event":"sent","bytes":n,"ms":t,"cpuMs":c} (c: its own CPU, all threads) and exits.
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
    let expected = -1
    let done = 0
    try {
      const header: Uint8Array[] = []
      for await (const chunk of stream) {
        bytes += chunk.byteLength
        if (expected < 0) {
          header.push(chunk.subarray())
          if (bytes < 8) continue
          expected = Number(Buffer.concat(header).readBigUInt64BE(0)) + 8
        }
        if (bytes >= expected && done === 0) {
          done = performance.now()
          emit({ event: 'received', bytes: bytes - 8, ms: done - t0 })
        }
      }
      if (bytes !== expected) throw new Error(`stream ended after ${bytes - 8} of ${expected - 8} bytes`)
      if (!stream.send(Uint8Array.of(1))) await stream.onDrain()
      await stream.close()
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
  const header = Buffer.alloc(8)
  header.writeBigUInt64BE(BigInt(total))
  stream.send(header)
  let sent = 0
  let i = 0
  while (sent < total) {
    const len = Math.min(CHUNK, total - sent)
    const buf = len === CHUNK ? bufs[i++ % bufs.length] : bufs[0].subarray(0, len)
    if (!stream.send(buf)) await stream.onDrain()
    sent += len
  }
  await stream.close()
  // the receiver's acknowledgement: all bytes arrived
  for await (const chunk of stream) if (chunk.byteLength > 0) break
  // the sender's own CPU (every thread, process start included): it exits right after, before
  // anyone could read its /proc entry
  const { user, system } = process.cpuUsage()
  emit({ event: 'sent', bytes: sent, ms: performance.now() - t0, cpuMs: (user + system) / 1000 })
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
