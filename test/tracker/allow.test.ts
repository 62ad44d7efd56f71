// The whitelist (tracker --allow, --allow-file): parsing, reloads, and a real server answering
// 403 for manifests it does not track.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AllowList, AllowListError, parseAllowText } from '../../tracker/allow.js'
import { announceQuery, getJson, makeCid, makePeer, recordParam, useTrackers } from './helpers.js'
import type { TestPeer } from './helpers.js'

let allowed: string
let other: string
let peer: TestPeer
let dir: string

beforeAll(async () => {
  allowed = await makeCid('allowed')
  other = await makeCid('other')
  peer = await makePeer()
  dir = await mkdtemp(join(tmpdir(), 'bitswarm-allow-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const start = useTrackers()

async function announce (base: string, manifest: string): Promise<{ status: number, body: { error?: string, interval?: number } }> {
  const record = await recordParam(peer.key, ['/ip4/127.0.0.1/tcp/4001'])
  return await getJson(`${base}/announce?${announceQuery({ manifest, peer: peer.id, record, uploaded: 0, downloaded: 0, left: 10 })}`)
}

describe('allow list parsing', () => {
  it('one CID a line; blank lines and # comments ignored; CIDs normalized; bad lines reported by number', () => {
    const b58 = CID.parse(allowed).toString(base58btc)
    const parsed = parseAllowText(`# swarms we serve\n\n${allowed}\n  ${b58}   # same, in base58\nnot-a-cid\r\n${other}\n`)
    expect(parsed.cids).toEqual([allowed, allowed, other])
    expect(parsed.invalid).toEqual([{ line: 5, text: 'not-a-cid' }])
  })

  it('a CIDv0 is refused (the tracker keys swarms by CIDv1)', () => {
    expect(parseAllowText('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG').invalid).toHaveLength(1)
  })

  it('at start a bad --allow or a bad line in the file is an error naming it', async () => {
    expect(() => new AllowList({ cids: ['nope'] })).toThrow(AllowListError)
    expect(() => new AllowList({ cids: ['nope'] })).toThrow(/--allow "nope" is not a CIDv1/)
    const file = join(dir, 'bad.txt')
    await writeFile(file, `${allowed}\n# fine\nbafy-broken\n`)
    await expect(AllowList.load({ file })).rejects.toThrow(new RegExp(`--allow-file ${file} line 3: "bafy-broken" is not a CIDv1`))
    await expect(AllowList.load({ file: join(dir, 'missing.txt') })).rejects.toThrow(AllowListError)
  })

  it('reload: new list replaces the file part; bad lines skipped with a warning; an unreadable file keeps the old list', async () => {
    const file = join(dir, 'list.txt')
    await writeFile(file, `${allowed}\n`)
    const logs: string[] = []
    const fixed = await makeCid('fixed')
    const list = await AllowList.load({ file, cids: [fixed], log: (l) => { logs.push(l) } })
    expect([list.allows(allowed), list.allows(other), list.allows(fixed)]).toEqual([true, false, true])

    await writeFile(file, `${other}\nbroken\n`)
    expect(await list.reload()).toBe(true)
    expect([list.allows(allowed), list.allows(other), list.allows(fixed)]).toEqual([false, true, true])
    expect(logs.some(l => l.includes('line 2') && l.includes('skipped'))).toBe(true)

    await rm(file)
    logs.length = 0
    expect(await list.reload()).toBe(false)
    expect([list.allows(allowed), list.allows(other), list.allows(fixed)]).toEqual([false, true, true])
    expect(logs).toHaveLength(1)
    expect(logs[0]).toMatch(/not reloaded, keeping the old one/)
  })
})

describe('tracker with an allow list', () => {
  it('an allowed manifest is served; another gets 403 "manifest not tracked here" (announce and scrape)', async () => {
    const { base } = await start({ allow: new AllowList({ cids: [allowed] }) })
    expect((await announce(base, allowed)).status).toBe(200)
    const refused = await announce(base, other)
    expect(refused).toMatchObject({ status: 403, body: { error: 'manifest not tracked here' } })
    // the same manifest written in another base is the same manifest
    const b58 = CID.parse(allowed).toString(base58btc)
    expect((await getJson(`${base}/scrape?manifest=${b58}`)).body.files?.[b58]).toEqual({ complete: 0, incomplete: 1, downloaded: 0 })
    expect(await getJson(`${base}/scrape?manifest=${other}`)).toMatchObject({ status: 403, body: { error: 'manifest not tracked here' } })
  })

  it('a scrape of several answers for the allowed ones only', async () => {
    const { base } = await start({ allow: new AllowList({ cids: [allowed] }) })
    await announce(base, allowed)
    const r = await getJson(`${base}/scrape?manifest=${allowed}&manifest=${other}`)
    expect(r.status).toBe(200)
    expect(r.body.files).toEqual({ [allowed]: { complete: 0, incomplete: 1, downloaded: 0 } })
  })

  it('the refusal comes before the signature is checked (a bogus record still gets 403)', async () => {
    const { base } = await start({ allow: new AllowList({ cids: [allowed] }) })
    const r = await getJson(`${base}/announce?${announceQuery({ manifest: other, peer: peer.id, record: 'AAAA', uploaded: 0, downloaded: 0, left: 1 })}`)
    expect(r.status).toBe(403)
  })

  it('without an allow list every manifest is served', async () => {
    const { base } = await start()
    expect((await announce(base, other)).status).toBe(200)
  })
})
