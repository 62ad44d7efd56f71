/**
 * Drives a hostile peer's side of a wire stream message by message: `script` sees each message
 * the other end sends, in order, and answers however the attack needs. Returns when the stream
 * closes or `stop()` is called.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { MessageType, type WireMessage } from '../../src/wire/codec.js'
import type { WireConn } from './attacker.js'

export interface Script {
  stop: () => void
  done: Promise<void>
}

export function runScript (conn: WireConn, script: (m: WireMessage) => void): Script {
  let stopped = false
  const done = (async () => {
    let i = 0
    while (!stopped && !conn.closed) {
      try {
        await conn.next(() => true, i, 1000)
      } catch {
        continue
      }
      while (i < conn.messages.length && !stopped) {
        script(conn.messages[i])
        // nothing reads old messages again: let them go, the array would grow for the whole run
        ;(conn.messages as Array<WireMessage | undefined>)[i] = undefined
        i++
      }
    }
  })()
  return { stop: () => { stopped = true }, done }
}

/** A `piece` message carrying `length` bytes of `fill`. */
export function fakeBlock (piece: number, offset: number, length: number, fill = 0xee): WireMessage {
  return { type: MessageType.Piece, piece, offset, data: new Uint8ArrayList(new Uint8Array(length).fill(fill)) }
}
