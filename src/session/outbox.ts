/**
 * The frames a session has queued for its next write, gathered into as few buffers as possible.
 *
 * Below the session every buffer of a list is handled on its own: Noise runs its cipher over
 * each, and @libp2p/tcp hands each to its own write(2). A tick's haves and requests, or a run of
 * 4 KiB pieces (a folder's small files), queued as a list of frames went out as hundreds of tiny
 * writes, each also a wake-up and a read at the other end: a folder download made seven times
 * the writes of the same bytes as one file. Small buffers are therefore copied together; a large
 * block stays a buffer of its own (copying 64 KiB costs about what a write saves), with the
 * small frames before it (its header among them) merged into one.
 */
import { Uint8ArrayList } from 'uint8arraylist'

/** Buffers of at least this many bytes are sent as they are; smaller ones are copied together. */
export const COPY_BELOW = 16 * 1024

export class Outbox {
  /** the buffers of the next write, in order */
  private parts: Uint8Array[] = []
  /** small buffers after the last part, to be copied into one */
  private small: Uint8Array[] = []
  private smallBytes = 0
  private total = 0

  /** Bytes queued. */
  get bytes (): number {
    return this.total
  }

  add (data: Uint8Array | Uint8ArrayList): void {
    if (data instanceof Uint8Array) this.addBuffer(data)
    else for (const buf of data) this.addBuffer(buf)
  }

  /** Everything queued, as one buffer or a list of few; the outbox is empty afterwards. */
  take (): Uint8Array | Uint8ArrayList {
    this.mergeSmall()
    const parts = this.parts
    this.parts = []
    this.total = 0
    return parts.length === 1 ? parts[0] : new Uint8ArrayList(...parts)
  }

  private addBuffer (buf: Uint8Array): void {
    if (buf.byteLength === 0) return
    this.total += buf.byteLength
    if (buf.byteLength >= COPY_BELOW) {
      this.mergeSmall()
      this.parts.push(buf)
    } else {
      this.small.push(buf)
      this.smallBytes += buf.byteLength
    }
  }

  private mergeSmall (): void {
    const small = this.small
    if (small.length === 0) return
    if (small.length === 1) {
      this.parts.push(small[0])
    } else {
      const merged = new Uint8Array(this.smallBytes)
      let at = 0
      for (const buf of small) {
        merged.set(buf, at)
        at += buf.byteLength
      }
      this.parts.push(merged)
    }
    this.small = []
    this.smallBytes = 0
  }
}
