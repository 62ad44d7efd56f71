/**
 * A Peer of this process as a source of the live page: its stats, its piece map and its
 * connected peers, read each interval.
 */
import type { Peer } from '../peer.js'
import type { PeerInfo } from '../swarm/swarm.js'
import { encodePieceMap, MAX_FILE_NAMES, type UiPeer, type UiSnapshot, type UiSource } from './snapshot.js'

/** What the page reads of a Peer. */
export type PeerLike = Pick<Peer, 'cid' | 'peerId' | 'phase' | 'manifest' | 'stats' | 'peerInfos' | 'pieceMap'>

export function peerSource (name: string, peer: PeerLike): UiSource {
  return { name, snapshot: () => peerSnapshot(name, peer) }
}

export function peerSnapshot (name: string, peer: PeerLike, now = Date.now()): UiSnapshot {
  const m = peer.manifest
  const snap: UiSnapshot = {
    name,
    t: now,
    phase: peer.phase,
    cid: peer.cid.toString(),
    peerId: peer.peerId,
    stats: peer.stats()
  }
  if (m != null) {
    snap.manifest = {
      name: m.name,
      bytes: m.length,
      pieceLength: m.pieceLength,
      ...(m.version === 2 ? { files: m.files.length, fileNames: m.files.slice(0, MAX_FILE_NAMES).map(f => f.path.join('/')) } : {})
    }
  }
  const map = peer.pieceMap()
  // no pieces until the manifest is known
  if (map.pieces > 0) {
    snap.map = encodePieceMap({ pieces: map.pieces, have: i => map.have.get(i), inFlight: map.inFlight, availability: map.availability })
  }
  snap.peers = peer.peerInfos().map(uiPeer)
  return snap
}

function uiPeer (p: PeerInfo): UiPeer {
  return {
    peerId: p.peerId,
    address: p.address,
    source: p.source,
    via: p.via,
    progress: Math.round(p.progress * 10000) / 10000,
    downloadRate: Math.round(p.downloadRate),
    uploadRate: Math.round(p.uploadRate),
    amChoking: p.amChoking,
    amInterested: p.amInterested,
    peerChoking: p.peerChoking,
    peerInterested: p.peerInterested,
    optimistic: p.optimistic,
    snubbed: p.snubbed
  }
}
