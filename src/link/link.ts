/**
 * The share link: one string that names a manifest and where to find its swarm, in the spirit of
 * a magnet link. Pure: no I/O.
 *
 * Grammar (RFC 3986 URI syntax, ABNF; `unreserved` and `pct-encoded` as in RFC 3986):
 *
 *   link   = scheme ":?" param *( "&" param )          ; at most MAX_LINK_LENGTH (8192) characters
 *   scheme = "bitswarm"                                 ; ASCII case-insensitive, as URI schemes are
 *   param  = xt / dn / tr / pe                          ; any order; keys are lowercase
 *   xt     = "xt=urn:cid:" cid                          ; exactly once: the manifest's CID (CIDv1,
 *                                                       ;   dag-cbor, sha2-256: what parseCid takes)
 *   dn     = "dn=" value                                ; at most once: the display name, a valid
 *                                                       ;   manifest name (one path component)
 *   tr     = "tr=" value                                ; 0..16: an http:// or https:// tracker URL
 *   pe     = "pe=" value                                ; 0..16: a multiaddr with a transport part
 *                                                       ;   and a last /p2p/<peer id>
 *   value  = 1*( unreserved / pct-encoded / "!" / "$" / "'" / "(" / ")" / "*" / "+" / "," / ";"
 *              / "=" / ":" / "@" / "/" / "?" )
 *
 * A value is percent-decoded as UTF-8 (`+` is a plus sign, not a space); a raw `&`, `#`, space,
 * control or non-ASCII character never appears in a link. No empty parameter, no parameter without
 * `=`, no empty value, no unknown key, no tracker or peer listed twice (peers compared in their
 * canonical form).
 *
 * formatLink writes `xt`, then `dn`, then each `tr` and each `pe` in the order given; values are
 * percent-encoded as encodeURIComponent does, except that `:`, `/` and `@` stay raw so trackers and
 * addresses remain readable. Peer addresses are written (and parsed back) in the canonical text of
 * @multiformats/multiaddr with a base58btc peer id; trackers are kept as written. Example:
 *
 *   bitswarm:?xt=urn:cid:bafyrei…&dn=photos&tr=http://127.0.0.1:8000/announce
 *     &pe=/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…            (one line; broken here for width)
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { nameProblem, parseCid } from '../manifest/manifest.js'
import { splitPeerAddr, withPeerId } from '../net/addr.js'

export const LINK_SCHEME = 'bitswarm'
/** Cap on a whole link, in characters: a link is pasted and typed, and parsed from anyone. */
export const MAX_LINK_LENGTH = 8192
/** Caps on the `tr` and `pe` parameters of one link. */
export const MAX_LINK_TRACKERS = 16
export const MAX_LINK_PEERS = 16

export interface ShareLink {
  /** the manifest's CID */
  cid: CID
  /** a display name (the manifest's own name is the one that counts) */
  name?: string
  /** http(s) tracker URLs */
  trackers: string[]
  /** multiaddrs, each ending in /p2p/<peer id> */
  peers: string[]
}

/** A link that does not follow the grammar above; `reason` says the first thing wrong. */
export class InvalidLinkError extends Error {
  override name = 'InvalidLinkError'
  constructor (readonly reason: string) {
    super(`invalid share link: ${reason}`)
  }
}

const URN_PREFIX = 'urn:cid:'
// the characters a link may hold raw after "bitswarm:" (RFC 3986 query characters)
const LINK_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/
const BAD_CHAR = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/

/** True when `text` is meant as a share link (starts with "bitswarm:"), not a CID or a path. */
export function looksLikeLink (text: string): boolean {
  // the scheme alone decides: a malformed link then gets parseLink's precise error, not "no such file"
  return /^\s*bitswarm:/i.test(text)
}

/** The share link for `link`; InvalidLinkError when parseLink would reject the result. */
export function formatLink (link: ShareLink): string {
  const { cid, name, trackers, peers } = checkedParts(link)
  let out = `${LINK_SCHEME}:?xt=${URN_PREFIX}${cid.toString()}`
  if (name !== undefined) out += `&dn=${encodeValue(name)}`
  for (const t of trackers) out += `&tr=${encodeValue(t)}`
  for (const p of peers) out += `&pe=${encodeValue(p)}`
  if (out.length > MAX_LINK_LENGTH) throw new InvalidLinkError(`it would be ${out.length} characters long, more than ${MAX_LINK_LENGTH}`)
  return out
}

/** Parses a share link strictly (the grammar above); InvalidLinkError with the first problem. */
export function parseLink (text: string): ShareLink {
  if (typeof text !== 'string') throw new InvalidLinkError('not a string')
  // a pasted link often carries a newline or spaces around it: those alone are forgiven
  const link = text.trim()
  if (link.length > MAX_LINK_LENGTH) throw new InvalidLinkError(`it is ${link.length} characters long, more than ${MAX_LINK_LENGTH}`)
  const colon = link.indexOf(':')
  if (colon < 0 || link.slice(0, colon).toLowerCase() !== LINK_SCHEME) {
    throw new InvalidLinkError(`${quote(link)} does not start with ${LINK_SCHEME}:`)
  }
  const rest = link.slice(colon + 1)
  if (!rest.startsWith('?')) throw new InvalidLinkError(`${LINK_SCHEME}: must be followed by ?xt=urn:cid:<cid>`)
  const query = rest.slice(1)
  if (query === '') throw new InvalidLinkError('it has no xt=urn:cid:<cid>')
  if (!LINK_CHARS.test(query)) {
    const bad = BAD_CHAR.exec(query)?.[0] ?? ''
    throw new InvalidLinkError(`it holds ${quote(bad)}: spaces, '#' and characters outside ASCII must be percent-encoded`)
  }

  let cid: CID | undefined
  let name: string | undefined
  const trackers: string[] = []
  const peers: string[] = []
  for (const param of query.split('&')) {
    if (param === '') throw new InvalidLinkError("it has an empty parameter (an '&' too many)")
    const eq = param.indexOf('=')
    if (eq < 0) throw new InvalidLinkError(`parameter ${quote(param)} has no '=' and no value`)
    const key = param.slice(0, eq)
    const raw = param.slice(eq + 1)
    if (key !== 'xt' && key !== 'dn' && key !== 'tr' && key !== 'pe') throw new InvalidLinkError(`unknown parameter ${quote(key)} (known: xt, dn, tr, pe)`)
    if (raw === '') throw new InvalidLinkError(`parameter ${key} is empty`)
    const value = decodeValue(key, raw)
    switch (key) {
      case 'xt':
        if (cid !== undefined) throw new InvalidLinkError('it has more than one xt')
        cid = checkXt(value)
        break
      case 'dn':
        if (name !== undefined) throw new InvalidLinkError('it has more than one dn')
        name = checkName(value)
        break
      case 'tr':
        if (trackers.length >= MAX_LINK_TRACKERS) throw new InvalidLinkError(`it has more than ${MAX_LINK_TRACKERS} trackers (tr)`)
        trackers.push(checkTracker(value, trackers))
        break
      case 'pe':
        if (peers.length >= MAX_LINK_PEERS) throw new InvalidLinkError(`it has more than ${MAX_LINK_PEERS} peers (pe)`)
        peers.push(checkPeer(value, peers))
        break
    }
  }
  if (cid === undefined) throw new InvalidLinkError('it has no xt=urn:cid:<cid>')
  return name === undefined ? { cid, trackers, peers } : { cid, name, trackers, peers }
}

/** `link`'s parts checked as parseLink checks them, peers in canonical form. */
function checkedParts (link: ShareLink): ShareLink {
  let cid: CID
  try {
    cid = parseCid(link.cid.toString())
  } catch (err) {
    throw new InvalidLinkError((err as Error).message)
  }
  if (link.trackers.length > MAX_LINK_TRACKERS) throw new InvalidLinkError(`it has more than ${MAX_LINK_TRACKERS} trackers`)
  if (link.peers.length > MAX_LINK_PEERS) throw new InvalidLinkError(`it has more than ${MAX_LINK_PEERS} peers`)
  const trackers: string[] = []
  for (const t of link.trackers) trackers.push(checkTracker(t, trackers))
  const peers: string[] = []
  for (const p of link.peers) peers.push(checkPeer(p, peers))
  return link.name === undefined ? { cid, trackers, peers } : { cid, name: checkName(link.name), trackers, peers }
}

function checkXt (value: string): CID {
  if (value.slice(0, URN_PREFIX.length).toLowerCase() !== URN_PREFIX) throw new InvalidLinkError(`xt must be urn:cid:<cid>, got ${quote(value)}`)
  const text = value.slice(URN_PREFIX.length)
  // parseCid trims; a link holds no spaces anyway, so this only keeps "urn:cid: x" out of formatLink
  if (text.trim() !== text) throw new InvalidLinkError(`xt ${quote(value)} has spaces`)
  try {
    return parseCid(text)
  } catch (err) {
    throw new InvalidLinkError(`xt: ${(err as Error).message}`)
  }
}

function checkName (value: string): string {
  const problem = nameProblem(value)
  if (problem !== undefined) throw new InvalidLinkError(`dn: ${problem}`)
  return value
}

function checkTracker (value: string, seen: readonly string[]): string {
  // URL() forgives leading spaces and "http:host"; a tracker in a link must be written out in full
  if (!/^https?:\/\/[^\s\x00-\x1f\x7f]+$/i.test(value) || !value.isWellFormed()) throw new InvalidLinkError(`tracker ${quote(value)} is not an http(s) URL`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InvalidLinkError(`tracker ${quote(value)} is not an http(s) URL`)
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') throw new InvalidLinkError(`tracker ${quote(value)} is not an http(s) URL`)
  if (seen.includes(value)) throw new InvalidLinkError(`tracker ${quote(value)} is listed twice`)
  return value
}

/** The canonical text of peer address `value`, or InvalidLinkError. */
function checkPeer (value: string, seen: readonly string[]): string {
  // encodeURIComponent cannot write a lone surrogate (a parsed value never has one)
  if (!value.isWellFormed()) throw new InvalidLinkError(`peer ${quote(value)} is not well-formed Unicode`)
  let canonical: string
  try {
    const { bare, peerId } = splitPeerAddr(value)
    if (peerId === undefined) throw new InvalidLinkError(`peer ${quote(value)} does not end in /p2p/<peer id>`)
    if (bare.getComponents().length === 0) throw new InvalidLinkError(`peer ${quote(value)} has no address before /p2p/<peer id>`)
    let id: string
    try {
      const parsed = peerIdFromString(peerId)
      // a URL "peer id" names an HTTP gateway, not a peer one can dial
      if (parsed.type === 'url') throw new Error('not a key')
      id = parsed.toString()
    } catch {
      throw new InvalidLinkError(`peer ${quote(value)} has an invalid peer id ${quote(peerId)}`)
    }
    canonical = withPeerId(bare.toString(), id)
  } catch (err) {
    if (err instanceof InvalidLinkError) throw err
    throw new InvalidLinkError(`peer ${quote(value)} is not a valid multiaddr`)
  }
  if (seen.includes(canonical)) throw new InvalidLinkError(`peer ${quote(value)} is listed twice`)
  return canonical
}

function decodeValue (key: string, raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new InvalidLinkError(`parameter ${key} is not valid percent-encoded UTF-8: ${quote(raw)}`)
  }
}

/** encodeURIComponent, with ':', '/' and '@' left raw (allowed in a URI query) for readability. */
function encodeValue (value: string): string {
  return encodeURIComponent(value).replace(/%3A|%2F|%40/g, (m) => m === '%3A' ? ':' : m === '%2F' ? '/' : '@')
}

/** `text` quoted for a message, cut to 100 characters (a link comes from anyone). */
function quote (text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text)
}
