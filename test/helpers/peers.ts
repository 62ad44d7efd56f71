import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Peer } from '../../src/peer.js'

export const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

export async function sha256File (path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

/** Resolves with the peer's `complete` event; rejects on its `error` event. */
export async function completed (peer: Peer): Promise<{ path: string, bytes: number }> {
  return await new Promise((resolve, reject) => {
    peer.addEventListener('complete', (evt) => { resolve(evt.detail) }, { once: true })
    peer.addEventListener('error', (evt) => { reject(evt.detail) }, { once: true })
  })
}
