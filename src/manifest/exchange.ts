/**
 * Manifest exchange: a peer that knows only a manifest's CID asks a peer for the manifest's
 * bytes and trusts them only if they hash to that CID (as BEP 9 does for info dictionaries).
 *
 * Request:  lp(CID bytes).  Response: lp(<0><manifest bytes>) or lp(<1>) when not known.
 */
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { verifyManifest, type Manifest } from './manifest.js'

export const MANIFEST_PROTOCOL = '/bitswarm/manifest/1.0.0'
const MAX_MANIFEST_BYTES = 8 * 1024 * 1024
const OK = 0
const NOT_FOUND = 1

export class ManifestNotFoundError extends Error {
  override name = 'ManifestNotFoundError'
}

export interface ManifestRecord { cid: CID, bytes: Uint8Array }

/** Serves the manifests returned by `lookup` (keyed by CID string). */
export async function serveManifests (node: Libp2p, lookup: (cid: string) => Uint8Array | undefined, log: (msg: string) => void): Promise<void> {
  await node.handle(MANIFEST_PROTOCOL, async (stream: Stream) => {
    const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_BYTES })
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
  }, { maxInboundStreams: 16 })
}

/** Asks one peer for the manifest with this CID; verifies it against the CID. */
export async function fetchManifest (node: Libp2p, peer: PeerId, cid: CID, options: { signal?: AbortSignal } = {}): Promise<{ manifest: Manifest, bytes: Uint8Array }> {
  const signal = AbortSignal.any([AbortSignal.timeout(15_000), ...(options.signal != null ? [options.signal] : [])])
  const stream = await node.dialProtocol(peer, MANIFEST_PROTOCOL, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_BYTES + 1 })
    await lp.write(cid.bytes, { signal })
    const answer = (await lp.read({ signal })).subarray()
    if (answer[0] !== OK) throw new ManifestNotFoundError(`peer ${peer.toString()} does not have manifest ${cid.toString()}`)
    const bytes = answer.subarray(1)
    const manifest = await verifyManifest(bytes, cid)
    await stream.close({ signal }).catch(() => {})
    return { manifest, bytes }
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a, 0)
  out.set(b, a.byteLength)
  return out
}
