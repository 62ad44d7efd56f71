/**
 * Where the tracker keeps its swarms. An interface so a shared store (e.g. Redis) could replace
 * the in-memory one without touching the announce logic (the chihaya split).
 */

export interface PeerRecord {
  peerId: string
  multiaddrs: string[]
  left: number
  /** ms, clock of the tracker's `now` */
  lastSeen: number
  /** this peer's event=completed was already counted (a client may repeat it on retry) */
  countedComplete: boolean
}

export interface SwarmCounts {
  complete: number
  incomplete: number
  /** how many times event=completed was reported for the manifest */
  downloaded: number
}

export interface PeerStore {
  /** insert or replace a peer of a swarm */
  putPeer: (manifest: string, peer: PeerRecord) => void
  /** the peer if known and seen at or after `seenSince` */
  getPeer: (manifest: string, peerId: string, seenSince: number) => PeerRecord | undefined
  removePeer: (manifest: string, peerId: string) => void
  /** live peers of a swarm: seen at or after `seenSince` (expired ones may not be swept yet) */
  peers: (manifest: string, seenSince: number) => PeerRecord[]
  incrementCompleted: (manifest: string) => void
  counts: (manifest: string, seenSince: number) => SwarmCounts
  /** manifests with live peers or a non-zero completed counter */
  manifests: () => string[]
  /** drop peers seen before `seenSince`; returns how many were dropped */
  sweep: (seenSince: number) => number
}

interface Swarm {
  peers: Map<string, PeerRecord>
  completed: number
}

export class MemoryPeerStore implements PeerStore {
  private readonly swarms = new Map<string, Swarm>()

  putPeer (manifest: string, peer: PeerRecord): void {
    let swarm = this.swarms.get(manifest)
    if (swarm == null) {
      swarm = { peers: new Map(), completed: 0 }
      this.swarms.set(manifest, swarm)
    }
    swarm.peers.set(peer.peerId, peer)
  }

  getPeer (manifest: string, peerId: string, seenSince: number): PeerRecord | undefined {
    const peer = this.swarms.get(manifest)?.peers.get(peerId)
    return peer != null && peer.lastSeen >= seenSince ? peer : undefined
  }

  removePeer (manifest: string, peerId: string): void {
    const swarm = this.swarms.get(manifest)
    if (swarm == null) return
    swarm.peers.delete(peerId)
    this.dropIfEmpty(manifest, swarm)
  }

  peers (manifest: string, seenSince: number): PeerRecord[] {
    const swarm = this.swarms.get(manifest)
    if (swarm == null) return []
    const out: PeerRecord[] = []
    for (const peer of swarm.peers.values()) {
      if (peer.lastSeen >= seenSince) out.push(peer)
    }
    return out
  }

  incrementCompleted (manifest: string): void {
    let swarm = this.swarms.get(manifest)
    if (swarm == null) {
      swarm = { peers: new Map(), completed: 0 }
      this.swarms.set(manifest, swarm)
    }
    swarm.completed++
  }

  counts (manifest: string, seenSince: number): SwarmCounts {
    const swarm = this.swarms.get(manifest)
    let complete = 0
    let incomplete = 0
    if (swarm != null) {
      for (const peer of swarm.peers.values()) {
        if (peer.lastSeen < seenSince) continue
        if (peer.left === 0) complete++
        else incomplete++
      }
    }
    return { complete, incomplete, downloaded: swarm?.completed ?? 0 }
  }

  manifests (): string[] {
    return [...this.swarms.keys()]
  }

  sweep (seenSince: number): number {
    let dropped = 0
    for (const [manifest, swarm] of this.swarms) {
      for (const [id, peer] of swarm.peers) {
        if (peer.lastSeen < seenSince) {
          swarm.peers.delete(id)
          dropped++
        }
      }
      this.dropIfEmpty(manifest, swarm)
    }
    return dropped
  }

  // The completed counter is the swarm's history (scrape "downloaded"), so a swarm with no peers
  // is kept while that counter is non-zero.
  private dropIfEmpty (manifest: string, swarm: Swarm): void {
    if (swarm.peers.size === 0 && swarm.completed === 0) this.swarms.delete(manifest)
  }
}
