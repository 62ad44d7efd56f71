/**
 * patches/@chainsafe+libp2p-yamux+*.patch, applied at install (npm's postinstall runs
 * patch-package): a yamux receiver credits its sender once half the stream window is used, as
 * go-yamux and rust-yamux do, instead of after every data frame. Two real libp2p nodes (TCP +
 * Noise + Yamux) on 127.0.0.1 move 8 MiB over one stream; the receiver's window updates are
 * counted on the stream class the muxer uses. Unpatched, it sent one per data frame received.
 */
import '../../src/polyfill.js'
import { randomBytes, createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'

const PROTOCOL = '/bitswarm-test/yamux-window/1.0.0'
const TOTAL = 8 * 1024 * 1024
const CHUNK = 64 * 1024

interface Internals { recvWindow: number, recvWindowCapacity: number, handleData: (frame: unknown) => void, sendWindowUpdate: () => void }

describe('yamux window updates (the install-time patch)', () => {
  const nodes: Libp2p[] = []
  const restore: Array<() => void> = []
  afterEach(async () => {
    for (const r of restore.splice(0)) r()
    await Promise.all(nodes.splice(0).map(async n => { await n.stop() }))
  })

  it('credits the sender once half the window is used, not per data frame, and every byte arrives', async () => {
    const proto = YamuxStream.prototype as unknown as Internals
    const { handleData, sendWindowUpdate } = proto
    let frames = 0
    let updates = 0
    proto.handleData = function (this: Internals, frame: unknown) { frames++; handleData.call(this, frame) }
    proto.sendWindowUpdate = function (this: Internals) {
      const before = this.recvWindowCapacity
      sendWindowUpdate.call(this)
      // an update was sent when the capacity the sender may use went up again
      if (this.recvWindowCapacity > before) updates++
    }
    restore.push(() => { proto.handleData = handleData; proto.sendWindowUpdate = sendWindowUpdate })

    const make = async (): Promise<Libp2p> => {
      const n = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
      nodes.push(n)
      return n
    }
    const [receiver, sender] = await Promise.all([make(), make()])
    const received = new Promise<{ bytes: number, sha: string }>((resolve, reject) => {
      void receiver.handle(PROTOCOL, async (stream) => {
        const hash = createHash('sha256')
        let bytes = 0
        try {
          for await (const chunk of stream) {
            const data = chunk.subarray()
            hash.update(data)
            bytes += data.byteLength
          }
          resolve({ bytes, sha: hash.digest('hex') })
        } catch (err) { reject(err) }
      })
    })
    const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0], PROTOCOL)
    const sent = createHash('sha256')
    for (let n = 0; n < TOTAL; n += CHUNK) {
      const buf = randomBytes(CHUNK)
      sent.update(buf)
      if (!stream.send(buf)) await stream.onDrain()
    }
    await stream.close()
    const got = await received

    expect(got).toEqual({ bytes: TOTAL, sha: sent.digest('hex') })
    // unpatched: one update per data frame (39 of 39 here); patched: one per half window (256 KiB
    // at first, doubling), 6 for 20 frames
    expect(updates).toBeLessThan(frames / 2)
    expect(updates).toBeLessThanOrEqual(TOTAL / (256 * 1024))
    expect(updates).toBeGreaterThan(0)
  }, 30_000)
})
