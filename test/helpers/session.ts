import type { Uint8ArrayList } from 'uint8arraylist'
import type { PeerSession, SessionDelegate } from '../../src/session/session.js'
import type { BlockSpec, WirePeer } from '../../src/wire/codec.js'

/**
 * A SessionDelegate that records every call. `pieces` are the pieces "we" hold; `bytes` makes
 * the content of any block we upload.
 */
export class RecordingDelegate implements SessionDelegate {
  haveStates = 0
  readonly haves: number[] = []
  interest: boolean[] = []
  readonly chokes: BlockSpec[][] = []
  unchokes = 0
  readonly blocks: Array<{ piece: number, offset: number, data: Uint8Array }> = []
  readonly rejects: BlockSpec[] = []
  readonly reads: BlockSpec[] = []
  uploaded = 0
  readonly closes: Array<string | undefined> = []
  readonly peerLists: WirePeer[][] = []
  /** while set, readBlock waits for it: lets a test hold requests in the upload queue */
  gate: Promise<void> | undefined
  private releaseGate: (() => void) | undefined

  constructor (readonly pieces: Set<number>, private readonly bytes: (piece: number, offset: number, length: number) => Uint8Array) {}

  hold (): void {
    this.gate = new Promise(resolve => { this.releaseGate = resolve })
  }

  release (): void {
    this.gate = undefined
    this.releaseGate?.()
  }

  /** every recorded delegate call that reports a message, for waiting on */
  get events (): number {
    return this.haveStates + this.haves.length + this.interest.length + this.chokes.length + this.unchokes +
      this.blocks.length + this.rejects.length + this.peerLists.length
  }

  onHaveState = (): void => { this.haveStates++ }
  onPeers = (_s: PeerSession, peers: WirePeer[]): void => { this.peerLists.push(peers) }
  onHave = (_s: PeerSession, piece: number): void => { this.haves.push(piece) }
  onInterest = (s: PeerSession): void => { this.interest.push(s.peerInterested) }
  onChoke = (_s: PeerSession, dropped: BlockSpec[]): void => { this.chokes.push(dropped) }
  onUnchoke = (): void => { this.unchokes++ }
  onBlock = (_s: PeerSession, piece: number, offset: number, data: Uint8ArrayList): void => {
    this.blocks.push({ piece, offset, data: data.subarray() })
  }

  onReject = (_s: PeerSession, b: BlockSpec): void => { this.rejects.push(b) }
  hasPiece = (piece: number): boolean => this.pieces.has(piece)
  readBlock = async (piece: number, offset: number, length: number): Promise<Uint8Array> => {
    this.reads.push({ piece, offset, length })
    await this.gate
    return this.bytes(piece, offset, length)
  }

  onUpload = (_s: PeerSession, bytes: number): void => { this.uploaded += bytes }
  onClose = (_s: PeerSession, reason: string | undefined): void => { this.closes.push(reason) }
}
