import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  InvalidLinkError, MAX_LINK_LENGTH, MAX_LINK_PEERS, MAX_LINK_TRACKERS, formatLink, looksLikeLink, parseLink,
  type ShareLink
} from '../../src/link/link.js'
import { encodeManifest, manifestCid } from '../../src/manifest/manifest.js'

const A = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
const R = '12D3KooWCqNotkKfMtW1D2oZsJZEd4Nqs3N1YRsmQ5KbHmzKvF1R'
const TRACKER = 'http://127.0.0.1:8000/announce'

let cid: CID
let cidText: string
beforeAll(async () => {
  cid = await manifestCid(encodeManifest({ version: 1, name: 'a.bin', length: 40000, pieceLength: 16384, pieces: new Uint8Array(3 * 32).fill(7) }))
  cidText = cid.toString()
})

function xt (): string {
  return `bitswarm:?xt=urn:cid:${cidText}`
}

/** the error parseLink throws for `text`, checked to be one InvalidLinkError */
function rejection (text: string): string {
  try {
    parseLink(text)
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidLinkError)
    expect((err as Error).message).toMatch(/^invalid share link: /)
    expect((err as Error).message).not.toContain('\n')
    return (err as InvalidLinkError).reason
  }
  throw new Error(`parseLink accepted ${text}`)
}

function same (a: ShareLink, b: ShareLink): void {
  expect(a.cid.equals(b.cid)).toBe(true)
  expect({ ...a, cid: a.cid.toString() }).toEqual({ ...b, cid: b.cid.toString() })
}

describe('formatLink and parseLink', () => {
  it('round-trips a full link, and the text is the documented one', () => {
    const link: ShareLink = {
      cid,
      name: 'photos',
      trackers: [TRACKER, 'https://tracker.example.org/announce?key=a&b=c'],
      peers: [`/ip4/127.0.0.1/tcp/4001/p2p/${A}`, `/ip4/10.0.0.1/tcp/4001/p2p/${R}/p2p-circuit/p2p/${A}`, `/ip6/::1/tcp/4002/p2p/${R}`]
    }
    const text = formatLink(link)
    expect(text).toBe(
      `bitswarm:?xt=urn:cid:${cidText}&dn=photos` +
      `&tr=http://127.0.0.1:8000/announce&tr=https://tracker.example.org/announce%3Fkey%3Da%26b%3Dc` +
      `&pe=/ip4/127.0.0.1/tcp/4001/p2p/${A}&pe=/ip4/10.0.0.1/tcp/4001/p2p/${R}/p2p-circuit/p2p/${A}&pe=/ip6/::1/tcp/4002/p2p/${R}`
    )
    same(parseLink(text), link)
    expect(formatLink(link)).toBe(text) // deterministic
    expect(formatLink(parseLink(text))).toBe(text)
  })

  it('round-trips the least link: a CID alone', () => {
    const text = formatLink({ cid, trackers: [], peers: [] })
    expect(text).toBe(xt())
    const parsed = parseLink(text)
    expect(parsed).not.toHaveProperty('name')
    same(parsed, { cid, trackers: [], peers: [] })
  })

  it('round-trips Unicode, spaces and reserved characters in the name', () => {
    for (const name of ['Fotos 2024 — été', '日本語のフォルダ', 'emoji 🐝', 'a&b=c#d?e+f%g', "it's (1) [x] {y}", 'x:y@z']) {
      const text = formatLink({ cid, name, trackers: [TRACKER], peers: [] })
      expect(text).toMatch(/^[\x21-\x7e]+$/)
      expect(parseLink(text).name).toBe(name)
    }
  })

  it('round-trips the most a link may hold', () => {
    const trackers = Array.from({ length: MAX_LINK_TRACKERS }, (_, i) => `http://tracker${i}.example.org:8000/announce`)
    const peers = Array.from({ length: MAX_LINK_PEERS }, (_, i) => `/ip4/192.0.2.${i + 1}/tcp/4001/p2p/${i % 2 === 0 ? A : R}`)
    const link = { cid, name: 'n'.repeat(255), trackers, peers }
    same(parseLink(formatLink(link)), link)
  })

  it('parses parameters in any order, percent-encoded or raw, and forgives spaces around the link', () => {
    const encoded = `bitswarm:?pe=%2Fip4%2F127.0.0.1%2Ftcp%2F1%2Fp2p%2F${A}&tr=http%3A%2F%2F127.0.0.1%3A8000%2Fannounce&dn=a%20b&xt=urn%3Acid%3A${cidText}`
    const parsed = parseLink(`  ${encoded}\n`)
    same(parsed, { cid, name: 'a b', trackers: [TRACKER], peers: [`/ip4/127.0.0.1/tcp/1/p2p/${A}`] })
    // the scheme and the urn prefix are case-insensitive
    same(parseLink(`BitSwarm:?xt=URN:CID:${cidText}`), { cid, trackers: [], peers: [] })
    // '+' is a plus, not a space
    expect(parseLink(`${xt()}&dn=a+b`).name).toBe('a+b')
  })

  it('gives peer addresses in canonical form (/ipfs/ is /p2p/, a CID peer id is base58)', () => {
    const parsed = parseLink(`${xt()}&pe=/ip4/127.0.0.1/tcp/4001/ipfs/${A}`)
    expect(parsed.peers).toEqual([`/ip4/127.0.0.1/tcp/4001/p2p/${A}`])
    const asCid = peerIdFromString(A).toCID().toString()
    expect(asCid).toMatch(/^bafz/)
    expect(parseLink(`${xt()}&pe=/ip4/127.0.0.1/tcp/4001/p2p/${asCid}`).peers).toEqual([`/ip4/127.0.0.1/tcp/4001/p2p/${A}`])
  })
})

describe('parseLink rejects, with one clear reason', () => {
  it('another scheme, or no scheme', () => {
    expect(rejection(`magnet:?xt=urn:cid:${cidText}`)).toMatch(/does not start with bitswarm:/)
    expect(rejection(cidText)).toMatch(/does not start with bitswarm:/)
    expect(rejection('')).toMatch(/does not start with bitswarm:/)
    expect(rejection(`bitswarm://?xt=urn:cid:${cidText}`)).toMatch(/must be followed by \?xt=/)
    expect(rejection(`bitswarm:${cidText}`)).toMatch(/must be followed by \?xt=/)
  })

  it('a missing or duplicate xt', () => {
    expect(rejection('bitswarm:?')).toMatch(/no xt=urn:cid:<cid>/)
    expect(rejection(`bitswarm:?dn=x&tr=${TRACKER}`)).toMatch(/no xt=urn:cid:<cid>/)
    expect(rejection(`${xt()}&xt=urn:cid:${cidText}`)).toMatch(/more than one xt/)
    expect(rejection(`${xt()}&dn=a&dn=b`)).toMatch(/more than one dn/)
  })

  it('an xt that is not a manifest CID', async () => {
    expect(rejection(`bitswarm:?xt=${cidText}`)).toMatch(/xt must be urn:cid:<cid>/)
    expect(rejection('bitswarm:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a')).toMatch(/xt must be urn:cid:/)
    expect(rejection('bitswarm:?xt=urn:cid:bafynotacid')).toMatch(/xt: not a CID/)
    const rawCid = CID.create(1, raw.code, await sha256.digest(new Uint8Array([1, 2, 3])))
    expect(rejection(`bitswarm:?xt=urn:cid:${rawCid.toString()}`)).toMatch(/xt: not a manifest CID/)
    const v0 = CID.createV0(await sha256.digest(new Uint8Array([1])))
    expect(rejection(`bitswarm:?xt=urn:cid:${v0.toString()}`)).toMatch(/xt: not a manifest CID/)
  })

  it('a tracker that is not an http(s) URL, or is listed twice', () => {
    for (const bad of ['ftp://x/announce', 'udp://tracker:1337', 'http:x', 'http//x', '127.0.0.1:8000', 'javascript:alert(1)', 'http://', 'http://a%20b/']) {
      expect(rejection(`${xt()}&tr=${encodeURIComponent(bad)}`)).toMatch(/^tracker .* is not an http\(s\) URL$/)
    }
    expect(rejection(`${xt()}&tr=${TRACKER}&tr=${TRACKER}`)).toMatch(/listed twice/)
  })

  it('a peer that is not a multiaddr with a transport and a valid /p2p/<peer id>, or is listed twice', () => {
    expect(rejection(`${xt()}&pe=not-an-addr`)).toMatch(/is not a valid multiaddr/)
    expect(rejection(`${xt()}&pe=/ip4/999.0.0.1/tcp/1/p2p/${A}`)).toMatch(/is not a valid multiaddr/)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/4001`)).toMatch(/does not end in \/p2p\/<peer id>/)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/4001/p2p/${A}/p2p-circuit`)).toMatch(/does not end in \/p2p\/<peer id>/)
    expect(rejection(`${xt()}&pe=/p2p/${A}`)).toMatch(/has no address before \/p2p\/<peer id>/)
    // base58 that decodes, but to no peer id (cut short, or too short a hash)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/1/p2p/${A.slice(0, -3)}`)).toMatch(/has an invalid peer id/)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/1/p2p/QmNotAPeer`)).toMatch(/has an invalid peer id "QmNotAPeer"/)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/1/p2p/1111`)).toMatch(/has an invalid peer id/)
    expect(rejection(`${xt()}&pe=/ip4/127.0.0.1/tcp/1/p2p/${A}&pe=/ip4/127.0.0.1/tcp/1/ipfs/${A}`)).toMatch(/listed twice/)
  })

  it('unknown, empty or malformed parameters', () => {
    expect(rejection(`${xt()}&ws=http://x`)).toMatch(/unknown parameter "ws"/)
    expect(rejection(`${xt()}&XT=urn:cid:${cidText}`)).toMatch(/unknown parameter "XT"/)
    expect(rejection(`${xt()}&`)).toMatch(/empty parameter/)
    expect(rejection(`${xt()}&&dn=a`)).toMatch(/empty parameter/)
    expect(rejection(`${xt()}&dn`)).toMatch(/has no '='/)
    expect(rejection(`${xt()}&dn=`)).toMatch(/parameter dn is empty/)
    expect(rejection(`${xt()}&dn=%E0%A4%A`)).toMatch(/not valid percent-encoded UTF-8/)
    expect(rejection(`${xt()}&dn=%FF`)).toMatch(/not valid percent-encoded UTF-8/)
  })

  it('raw characters a link must encode', () => {
    expect(rejection(`${xt()}&dn=a b`)).toMatch(/holds " ": spaces, '#' and characters outside ASCII must be percent-encoded/)
    expect(rejection(`${xt()}&dn=été`)).toMatch(/holds "é"/)
    expect(rejection(`${xt()}#frag`)).toMatch(/holds "#"/)
    expect(rejection(`${xt()}&dn=a\nb`)).toMatch(/holds "\\n"/)
  })

  it('a display name that is not a valid manifest name', () => {
    expect(rejection(`${xt()}&dn=a%2Fb`)).toMatch(/^dn: name must be a single path component/)
    expect(rejection(`${xt()}&dn=..`)).toMatch(/^dn: name must not be/)
    expect(rejection(`${xt()}&dn=a%00b`)).toMatch(/^dn: /)
    expect(rejection(`${xt()}&dn=${'n'.repeat(256)}`)).toMatch(/^dn: name must be 1\.\.255 bytes/)
  })

  it('too many trackers or peers, or too long a link', () => {
    const trs = Array.from({ length: MAX_LINK_TRACKERS + 1 }, (_, i) => `&tr=http://t${i}/a`).join('')
    expect(rejection(`${xt()}${trs}`)).toMatch(/more than 16 trackers/)
    const pes = Array.from({ length: MAX_LINK_PEERS + 1 }, (_, i) => `&pe=/ip4/192.0.2.${i + 1}/tcp/1/p2p/${A}`).join('')
    expect(rejection(`${xt()}${pes}`)).toMatch(/more than 16 peers/)
    const long = `${xt()}&tr=http://x/${'a'.repeat(MAX_LINK_LENGTH)}`
    expect(rejection(long)).toMatch(/characters long, more than 8192/)
    // the cap is checked first: a huge link is not scanned
    expect(rejection(`bitswarm:?${'&'.repeat(1_000_000)}`)).toMatch(/more than 8192/)
  })

  it('quotes at most 100 characters of what it rejects', () => {
    const reason = rejection(`${xt()}&tr=ftp://${'x'.repeat(5000)}`)
    expect(reason.length).toBeLessThan(200)
  })
})

describe('formatLink refuses what parseLink would reject', () => {
  it('a bad tracker, peer, name, count or length', () => {
    const base = { cid, trackers: [] as string[], peers: [] as string[] }
    expect(() => formatLink({ ...base, trackers: ['ftp://x'] })).toThrow(InvalidLinkError)
    expect(() => formatLink({ ...base, trackers: [' http://x/a'] })).toThrow(InvalidLinkError)
    expect(() => formatLink({ ...base, trackers: ['http://x/\ud800'] })).toThrow(InvalidLinkError)
    expect(() => formatLink({ ...base, trackers: [TRACKER, TRACKER] })).toThrow(/listed twice/)
    expect(() => formatLink({ ...base, peers: ['/ip4/127.0.0.1/tcp/1'] })).toThrow(/does not end in/)
    expect(() => formatLink({ ...base, name: 'a/b' })).toThrow(/dn: /)
    expect(() => formatLink({ ...base, name: '' })).toThrow(/dn: /)
    expect(() => formatLink({ ...base, trackers: Array.from({ length: 17 }, (_, i) => `http://t${i}/`) })).toThrow(/more than 16 trackers/)
    expect(() => formatLink({ ...base, trackers: [`http://x/${'a'.repeat(MAX_LINK_LENGTH)}`] })).toThrow(/characters long, more than 8192/)
  })

  it('a CID that names no manifest', async () => {
    const rawCid = CID.create(1, raw.code, await sha256.digest(new Uint8Array([1, 2, 3])))
    expect(() => formatLink({ cid: rawCid, trackers: [], peers: [] })).toThrow(InvalidLinkError)
  })

  it('writes peers in canonical form', () => {
    const text = formatLink({ cid, trackers: [], peers: [`/ip4/127.0.0.1/tcp/1/ipfs/${A}`] })
    expect(text).toBe(`${xt()}&pe=/ip4/127.0.0.1/tcp/1/p2p/${A}`)
  })
})

describe('looksLikeLink', () => {
  it('tells a link from a CID or a manifest path', () => {
    expect(looksLikeLink(xt())).toBe(true)
    expect(looksLikeLink('  BITSWARM:?xt=x')).toBe(true)
    // a malformed link is still a link: parseLink then says what is wrong with it
    expect(looksLikeLink('bitswarm:bafy')).toBe(true)
    expect(looksLikeLink(cidText)).toBe(false)
    expect(looksLikeLink('./photos.bitswarm')).toBe(false)
    expect(looksLikeLink('bitswarm.manifest')).toBe(false)
    expect(looksLikeLink('magnet:?xt=urn:btih:x')).toBe(false)
  })
})
