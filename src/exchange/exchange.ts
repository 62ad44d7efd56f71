/**
 * Manifest exchange: a peer that knows only a manifest's CID asks a peer for the manifest's
 * bytes and trusts them only if they hash to that CID (as BEP 9 does for info dictionaries).
 *
 * Request:  lp(CID bytes).  Response: lp(<0><manifest bytes>) or lp(<1>) when not known.
 */
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { MAX_MANIFEST_BYTES, verifyManifest, type Manifest } from '../manifest/manifest.js'

export const MANIFEST_PROTOCOL = '/bitswarm/manifest/1.0.0'
/**
 * An answer is one status byte, the manifest and its length prefix. The byte stream's own read
 * buffer (4 MiB by default) must hold all of it, or manifests between 4 and 8 MiB, valid to
 * make, could never be fetched.
 */
const MAX_ANSWER_BYTES = MAX_MANIFEST_BYTES + 1
const MAX_REQUEST_BYTES = 256
const OK = 0
const NOT_FOUND = 1

export class ManifestNotFoundError extends Error {
  override name = 'ManifestNotFoundError'
}

/** The peer did not start answering in time. */
export class ManifestTimeoutError extends Error {
  override name = 'ManifestTimeoutError'
}

export interface ManifestRecord { cid: CID, bytes: Uint8Array }

/** Serves the manifests returned by `lookup` (keyed by CID string). */
export async function serveManifests (node: Libp2p, lookup: (cid: string) => Uint8Array | undefined, log: (msg: string) => void): Promise<void> {
  await node.handle(MANIFEST_PROTOCOL, async (stream: Stream) => {
    // a request is one CID: a few dozen bytes
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES, maxBufferSize: MAX_REQUEST_BYTES + 16 })
    const signal = AbortSignal.timeout(10_000)
    try {
      const request = await lp.read({ signal })
      let text: string
      try {
        text = CID.decode(request.subarray()).toString()
      } catch {
        throw new Error('manifest request is not a CID')
      }
      const bytes = lookup(text)
      await lp.write(bytes == null ? Uint8Array.of(NOT_FOUND) : concat(Uint8Array.of(OK), bytes), { signal })
      await stream.close({ signal })
    } catch (err) {
      log(`manifest request failed: ${(err as Error).message}`)
      stream.abort(err as Error)
    }
  }, { maxInboundStreams: 16, runOnLimitedConnection: true }) // a manifest crosses a relay that carries no data: see net/relay.ts
}

export interface FetchManifestOptions {
  signal?: AbortSignal
  /**
   * ms within which the answer must start (default: only the overall 30 s): a peer that says
   * nothing is dropped soon, one sending a large manifest over a slow link is given time
   */
  answerTimeout?: number
}

/**
 * Asks one peer (dialled through the peer store, or on a connection already open) for the
 * manifest with this CID; verifies it against the CID.
 */
export async function fetchManifest (node: Libp2p, peer: PeerId | Connection, cid: CID, options: FetchManifestOptions = {}): Promise<{ manifest: Manifest, bytes: Uint8Array }> {
  const signal = AbortSignal.any([AbortSignal.timeout(30_000), ...(options.signal != null ? [options.signal] : [])])
  const stream = isConnection(peer)
    ? await peer.newStream(MANIFEST_PROTOCOL, { signal, runOnLimitedConnection: true })
    : await node.dialProtocol(peer, MANIFEST_PROTOCOL, { signal, runOnLimitedConnection: true })
  const remote = isConnection(peer) ? peer.remotePeer : peer
  let silence: ReturnType<typeof setTimeout> | undefined
  if (options.answerTimeout != null) {
    const ms = options.answerTimeout
    silence = setTimeout(() => { stream.abort(new ManifestTimeoutError(`peer ${remote.toString()} did not start answering within ${ms} ms`)) }, ms)
    stream.addEventListener('message', () => { clearTimeout(silence) }, { once: true })
  }
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES, maxBufferSize: MAX_ANSWER_BYTES + 16 })
    await lp.write(cid.bytes, { signal })
    const answer = (await lp.read({ signal })).subarray()
    if (answer[0] !== OK) throw new ManifestNotFoundError(`peer ${remote.toString()} does not have manifest ${cid.toString()}`)
    const bytes = answer.subarray(1)
    const manifest = await verifyManifest(bytes, cid)
    await stream.close({ signal }).catch(() => {})
    return { manifest, bytes }
  } catch (err) {
    stream.abort(err as Error)
    throw err
  } finally {
    clearTimeout(silence)
  }
}

function isConnection (peer: PeerId | Connection): peer is Connection {
  return 'newStream' in peer
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a, 0)
  out.set(b, a.byteLength)
  return out
}
