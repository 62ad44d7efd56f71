/**
 * A PeerStore in Redis, so that several tracker instances share their swarms and a restarted
 * tracker still knows every live one (all state is in Redis; nothing is kept in the process).
 *
 * Keys (P = keyPrefix, default `bitswarm:tracker:`; manifests are CIDs and peer ids base58/base32:
 * neither holds ':' or ' '; single Redis, no cluster, so no hash tags):
 *   P swarm:<m>:seeders   zset  peerId → lastSeen (ms, the caller's `now`), peers with left = 0
 *   P swarm:<m>:leechers  zset  peerId → lastSeen, the others (chihaya's layout: counts are ZCOUNTs)
 *   P swarm:<m>:addrs     zset  peerId → lastSeen, only peers with addresses: the candidate pool,
 *                               so peers nobody can dial never crowd the sample
 *   P swarm:<m>:data      hash  peerId → JSON {s: seq (decimal string), c: 0|1 completion counted,
 *                               h: host, m: multiaddrs}
 *   P swarm:<m>:done      string, the completed counter (scrape "downloaded")
 *   P swarms              zset  manifest → deadline: when the swarm stops being held unless announced
 *                               again (newest peer's lastSeen + peer TTL, + historyTtl once it has a
 *                               completed counter); swarms() and maxManifests read it
 *   P live                zset  manifest → that newest lastSeen + peer TTL (or when its last peer
 *                               stopped): below `now` the swarm is history only, and may yield
 *   P entries             zset  "<m> <peerId>" → lastSeen, every entry (maxPeersTotal)
 *   P peer:<peerId>       zset  manifest → lastSeen (maxSwarmsPerPeer)
 *   P host:<host>         zset  "<m> <peerId>" → lastSeen (maxPeersPerIp)
 *   P seq:<m>:<peerId>    string "<seq> <until>", the last seq of a peer that stopped or expired
 *   P remembered          zset  "<m> <peerId>" → until; capped at maxPeersTotal, oldest dropped first
 *
 * One Lua script (EVALSHA; the client falls back to EVAL on NOSCRIPT, e.g. after a Redis restart)
 * does a whole announce atomically: bounded housekeeping (expired entries, dead swarms, old seqs,
 * a few per call, by score), the replay check (seqs compared as decimal strings, never as Lua
 * doubles), put or remove, completion once, quotas and limits, then counts and candidates.
 * Counts are always ZCOUNTs over lastSeen >= seenSince, never maintained counters, so nothing can
 * drift. Expiry is lazy (by score, inside the script) plus PEXPIRE on every key written (peer keys
 * ~ peer TTL, counters and swarm indexes ~ peer TTL + historyTtl, seqs ~ replayWindow, plus a
 * second of slack), so a dead swarm disappears entirely on its own: there is no sweep.
 *
 * Differences from MemoryPeerStore:
 * - At a limit a newcomer is refused (TrackerFullError, the same messages); there is no eviction
 *   "from the host holding the most entries". History still yields to a new swarm (the oldest
 *   history-only swarm goes), and expired entries never count against a limit.
 * - A peer whose entry expired is a newcomer again (memory keeps it "known" until it is swept).
 * - Candidates are a random sample (ZRANDMEMBER) of at least numwant, at most max(2 × numwant, 50).
 * - Scores come from each instance's clock: instances sharing a Redis need synchronised clocks.
 * - An announce that times out may still have been applied; the client's retry carries a new seq.
 *
 * Failures: the client runs without an offline queue. While disconnected every operation fails at
 * once with StoreUnavailableError('redis unavailable: <reason>'); an operation slower than
 * commandTimeout fails with StoreUnavailableError('redis timed out after N ms'). The client
 * reconnects in the background (backoff capped at 1 s) for as long as the store is open.
 */
import { createClient, defineScript, ErrorReply, type CommandParser } from 'redis'
import { QuotaExceededError, StaleRecordError, StoreUnavailableError, TrackerFullError } from './errors.js'
import {
  StoreConfigError, storeLimits, type StoreLimits,
  type MemoryPeerStoreInit, type PeerCandidate, type PeerStore, type StoreAnnounce, type StoreAnnounceResult,
  type SwarmCounts, type SwarmSummary
} from './store.js'

export interface RedisPeerStoreInit extends MemoryPeerStoreInit {
  /** `redis://[user:password@]HOST:PORT[/DB]` */
  url: string
  /** seconds a silent peer is kept (the tracker's peerTtl): how long peer keys live; default 60 */
  peerTtl?: number
  /** every key starts with it; default `bitswarm:tracker:` */
  keyPrefix?: string
  /** ms an operation may take before it fails with StoreUnavailableError; default 1000 */
  commandTimeout?: number
  /** told once when the connection is lost and once when it is back (an operator's log); default none */
  log?: (line: string) => void
  /** ms start() waits for the first connection; default 3000 */
  connectTimeout?: number
}

export const DEFAULT_KEY_PREFIX = 'bitswarm:tracker:'
export const DEFAULT_COMMAND_TIMEOUT = 1000
export const DEFAULT_CONNECT_TIMEOUT = 3000
export const DEFAULT_REDIS_PEER_TTL = 60
/** reconnect backoff: 50 ms doubling, capped here */
const MAX_BACKOFF_MS = 1000
/** key TTLs run this much past the logical expiry, so a key never vanishes before its data is due */
const TTL_SLACK_MS = 1000
/** the commands one client may have queued (a hung Redis must not grow memory without bound) */
const MAX_QUEUED_COMMANDS = 10_000
/** manifests per scrape script call in swarms() (one call blocks Redis while it runs) */
const SWARMS_CHUNK = 500

export interface RedisUrl {
  host: string
  port: number
  database: number
  username?: string
  password?: string
}

const URL_FORM = 'expected redis://[user:password@]host:port[/db]'

/**
 * Parses `redis://[user:password@]HOST:PORT[/DB]`. Anything else is a StoreConfigError; the
 * message never repeats the URL (it may hold a password).
 */
export function parseRedisUrl (text: string): RedisUrl {
  const bad = (why: string): StoreConfigError => new StoreConfigError(`invalid Redis URL (${why}): ${URL_FORM}`)
  if (typeof text !== 'string' || text.trim() === '') throw bad('empty')
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    // the WHATWG parser refuses a port past 65535 outright: say so rather than "not a URL"
    const port = /^redis:\/\/[^/?#]*:([^/?#@]*)(?:[/?#]|$)/.exec(text.trim())?.[1]
    throw bad(port !== undefined ? 'bad port' : 'not a URL')
  }
  if (url.protocol !== 'redis:') throw bad(`scheme ${JSON.stringify(url.protocol.replace(/:$/, ''))} is not redis`)
  // the WHATWG parser keeps IPv6 brackets; net.connect wants the bare address
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') throw bad('no host')
  if (url.port === '') throw bad('no port')
  const port = Number(url.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('bad port')
  if (url.search !== '' || url.hash !== '') throw bad('query or fragment not supported')
  let database = 0
  const path = url.pathname
  if (path !== '' && path !== '/') {
    const m = /^\/(0|[1-9]\d{0,8})$/.exec(path)
    if (m == null) throw bad('bad database number')
    database = Number(m[1])
  }
  const out: RedisUrl = { host, port, database }
  try {
    if (url.username !== '') out.username = decodeURIComponent(url.username)
    if (url.password !== '') out.password = decodeURIComponent(url.password)
  } catch {
    throw bad('bad escape in credentials')
  }
  if (out.password !== undefined && out.username === undefined) out.username = 'default'
  return out
}

// ---------------------------------------------------------------------------------------------
// Lua. Scores and timestamps are ms numbers (exact as doubles up to 2^53); seqs stay strings.

const ANNOUNCE_LUA = `
local P = ARGV[1]
local manifest, peerId, seq, event = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local addrs, hasAddrs, seeder, host = ARGV[6], ARGV[7] == '1', ARGV[8] == '1', ARGV[9]
local now, seenSince, sampleCap = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local maxPerSwarm, maxSwarms, maxTotal = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local maxPerPeer, maxPerHost = tonumber(ARGV[16]), tonumber(ARGV[17])
local replayMs, historyMs, keyTtlMs, slackMs = tonumber(ARGV[18]), tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21])
local ttl = now - seenSince

local SWARMS, LIVE, ENTRIES, REMEMBERED = P .. 'swarms', P .. 'live', P .. 'entries', P .. 'remembered'
local function sk (m, part) return P .. 'swarm:' .. m .. ':' .. part end
local function seqKey (m, id) return P .. 'seq:' .. m .. ':' .. id end
local function peerKey (id) return P .. 'peer:' .. id end
local function hostKey (h) return P .. 'host:' .. h end
-- %.17g: integers print exactly (no exponent below 1e17), fractions round-trip
local function num (x) return string.format('%.17g', x) end
local NOW, SINCE = num(now), num(seenSince)

-- seqs are decimal strings without leading zeros (up to 2^64): longer is larger, else bytewise
local function cmpSeq (a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end

local function split (member)
  local i = string.find(member, ' ', 1, true)
  return string.sub(member, 1, i - 1), string.sub(member, i + 1)
end

local function remember (m, id, s)
  local k = seqKey(m, id)
  local prev = redis.call('GET', k)
  if prev then
    local ps = string.match(prev, '^%d+')
    if ps and cmpSeq(ps, s) > 0 then s = ps end
  end
  local untilMs = now + replayMs
  redis.call('SET', k, s .. ' ' .. num(untilMs), 'PX', num(replayMs + slackMs))
  redis.call('ZADD', REMEMBERED, num(untilMs), m .. ' ' .. id)
  redis.call('PEXPIRE', REMEMBERED, num(replayMs + slackMs))
  local extra = redis.call('ZCARD', REMEMBERED) - maxTotal
  if extra > 0 then
    local gone = redis.call('ZPOPMIN', REMEMBERED, extra)
    for i = 1, #gone, 2 do
      local gm, gid = split(gone[i])
      redis.call('DEL', seqKey(gm, gid))
    end
  end
end

-- forget an entry, remembering its seq (or a later one, from its stopped)
local function dropEntry (m, id, s)
  local data = sk(m, 'data')
  local raw = redis.call('HGET', data, id)
  local member = m .. ' ' .. id
  if raw then
    local e = cjson.decode(raw)
    if s == nil or cmpSeq(e.s, s) > 0 then s = e.s end
    redis.call('ZREM', hostKey(e.h), member)
    redis.call('HDEL', data, id)
  end
  redis.call('ZREM', sk(m, 'seeders'), id)
  redis.call('ZREM', sk(m, 'leechers'), id)
  redis.call('ZREM', sk(m, 'addrs'), id)
  redis.call('ZREM', ENTRIES, member)
  redis.call('ZREM', peerKey(id), m)
  if s then remember(m, id, s) end
end

local function trimSwarm (m)
  for _, part in ipairs({ 'seeders', 'leechers' }) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', sk(m, part), '-inf', '(' .. SINCE)) do dropEntry(m, id) end
  end
end

-- lastSeen of the swarm's newest entry, if any
local function newest (m)
  local best = nil
  for _, part in ipairs({ 'seeders', 'leechers' }) do
    local top = redis.call('ZRANGE', sk(m, part), -1, -1, 'WITHSCORES')
    if top[2] then
      local v = tonumber(top[2])
      if best == nil or v > best then best = v end
    end
  end
  return best
end

local function completed (m) return tonumber(redis.call('GET', sk(m, 'done')) or '0') end

-- u: until when the swarm has live peers; the counter keeps it held historyMs longer
local function setDeadline (m, u)
  redis.call('ZADD', LIVE, num(u), m)
  redis.call('ZADD', SWARMS, num(completed(m) > 0 and u + historyMs or u), m)
end

local function deleteSwarm (m)
  for _, part in ipairs({ 'seeders', 'leechers' }) do
    for _, id in ipairs(redis.call('ZRANGE', sk(m, part), 0, -1)) do dropEntry(m, id) end
  end
  redis.call('DEL', sk(m, 'seeders'), sk(m, 'leechers'), sk(m, 'addrs'), sk(m, 'data'), sk(m, 'done'))
  redis.call('ZREM', SWARMS, m)
  redis.call('ZREM', LIVE, m)
end

-- a swarm past its deadline: gone (unless live peers remain: the caller's peer TTL changed)
local function settleDead (m)
  trimSwarm(m)
  local n = newest(m)
  if n then setDeadline(m, n + ttl) else deleteSwarm(m) end
end

-- history yields to a new swarm: the oldest swarm without live peers goes; true if one did
local function dropHistory ()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', LIVE, '-inf', '(' .. NOW, 'LIMIT', 0, 10)) do
    local d = tonumber(redis.call('ZSCORE', SWARMS, m) or '-1')
    trimSwarm(m)
    if newest(m) == nil then
      deleteSwarm(m)
      if d >= now then return true end
    end
  end
  return false
end

-- housekeeping, a bounded amount per call: expired entries, dead swarms, old seqs
for _, member in ipairs(redis.call('ZRANGEBYSCORE', ENTRIES, '-inf', '(' .. SINCE, 'LIMIT', 0, 100)) do
  local m, id = split(member)
  dropEntry(m, id)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', SWARMS, '-inf', '(' .. NOW, 'LIMIT', 0, 5)) do settleDead(m) end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', REMEMBERED, '-inf', '(' .. NOW, 'LIMIT', 0, 100)) do
  local m, id = split(member)
  redis.call('DEL', seqKey(m, id))
  redis.call('ZREM', REMEMBERED, member)
end

-- this swarm: dead leftovers must not come back (an old counter), expired entries go first
local d0 = redis.call('ZSCORE', SWARMS, manifest)
if d0 and tonumber(d0) < now then settleDead(manifest) end
trimSwarm(manifest)

local data = sk(manifest, 'data')
local raw = redis.call('HGET', data, peerId)
local prev = nil
local last = nil
if raw then
  prev = cjson.decode(raw)
  last = prev.s
else
  local r = redis.call('GET', seqKey(manifest, peerId))
  if r then
    local s, u = string.match(r, '^(%d+) (%S+)$')
    if s and tonumber(u) >= now then last = s end
  end
end
if last and cmpSeq(seq, last) <= 0 then return { 'stale', last } end

local function counts (out)
  out[2] = redis.call('ZCOUNT', sk(manifest, 'seeders'), SINCE, '+inf')
  out[3] = redis.call('ZCOUNT', sk(manifest, 'leechers'), SINCE, '+inf')
  out[4] = completed(manifest)
  return out
end

if event == 'stopped' then
  if prev then
    dropEntry(manifest, peerId, seq)
    local n = newest(manifest)
    if n then setDeadline(manifest, n + ttl)
    elseif completed(manifest) > 0 then setDeadline(manifest, now)
    else deleteSwarm(manifest) end
  else
    -- a peer we did not know: its stopped may have overtaken its started
    remember(manifest, peerId, seq)
  end
  return counts({ 'ok', 0, 0, 0 })
end

if not prev then
  if redis.call('ZCOUNT', peerKey(peerId), SINCE, '+inf') >= maxPerPeer then return { 'quota', 'peer' } end
  if redis.call('ZCOUNT', hostKey(host), SINCE, '+inf') >= maxPerHost then return { 'quota', 'host' } end
  if redis.call('ZCOUNT', ENTRIES, SINCE, '+inf') >= maxTotal then return { 'full', 'peers' } end
  local d = redis.call('ZSCORE', SWARMS, manifest)
  if d and tonumber(d) >= now then
    local n = redis.call('ZCOUNT', sk(manifest, 'seeders'), SINCE, '+inf') + redis.call('ZCOUNT', sk(manifest, 'leechers'), SINCE, '+inf')
    if n >= maxPerSwarm then return { 'full', 'swarm' } end
  elseif redis.call('ZCOUNT', SWARMS, NOW, '+inf') >= maxSwarms and not dropHistory() then
    return { 'full', 'swarms' }
  end
end

local member = manifest .. ' ' .. peerId
local countNow = event == 'completed' and not (prev and prev.c == 1)
local counted = countNow or (prev ~= nil and prev.c == 1)
redis.call('HSET', data, peerId, '{"s":"' .. seq .. '","c":' .. (counted and '1' or '0') .. ',"h":' .. cjson.encode(host) .. ',"m":' .. addrs .. '}')
redis.call('ZADD', sk(manifest, seeder and 'seeders' or 'leechers'), NOW, peerId)
redis.call('ZREM', sk(manifest, seeder and 'leechers' or 'seeders'), peerId)
if hasAddrs then redis.call('ZADD', sk(manifest, 'addrs'), NOW, peerId) else redis.call('ZREM', sk(manifest, 'addrs'), peerId) end
redis.call('ZADD', ENTRIES, NOW, member)
redis.call('ZADD', peerKey(peerId), NOW, manifest)
redis.call('ZADD', hostKey(host), NOW, member)
if prev and prev.h ~= host then redis.call('ZREM', hostKey(prev.h), member) end
redis.call('DEL', seqKey(manifest, peerId))
redis.call('ZREM', REMEMBERED, member)
if countNow then redis.call('INCR', sk(manifest, 'done')) end
local u = now + ttl
local oldU = redis.call('ZSCORE', LIVE, manifest)
if oldU and tonumber(oldU) > u then u = tonumber(oldU) end
setDeadline(manifest, u)

-- every key written gets a TTL: a swarm nobody announces to disappears by itself
local peerLife, histLife = num(keyTtlMs), num(keyTtlMs + historyMs)
for _, part in ipairs({ 'seeders', 'leechers', 'addrs', 'data' }) do redis.call('PEXPIRE', sk(manifest, part), peerLife) end
redis.call('PEXPIRE', sk(manifest, 'done'), histLife)
redis.call('PEXPIRE', ENTRIES, peerLife)
redis.call('PEXPIRE', peerKey(peerId), peerLife)
redis.call('PEXPIRE', hostKey(host), peerLife)
redis.call('PEXPIRE', SWARMS, histLife)
redis.call('PEXPIRE', LIVE, histLife)

-- candidates: other live peers with addresses; a random sample once the pool is large
local out = counts({ 'ok', 0, 0, 0 })
local pool = sk(manifest, 'addrs')
local ids = {}
if redis.call('ZCARD', pool) <= sampleCap + 1 then
  ids = redis.call('ZRANGEBYSCORE', pool, SINCE, '+inf')
else
  local pick = redis.call('ZRANDMEMBER', pool, sampleCap + 1, 'WITHSCORES')
  for i = 1, #pick, 2 do
    if tonumber(pick[i + 1]) >= seenSince then ids[#ids + 1] = pick[i] end
  end
end
local want = {}
for _, id in ipairs(ids) do
  if id ~= peerId and #want < sampleCap then want[#want + 1] = id end
end
-- one HMGET, not a call per candidate: the sample is most of an announce's work
if #want > 0 then
  local entries = redis.call('HMGET', data, unpack(want))
  for i, id in ipairs(want) do
    if entries[i] then
      out[#out + 1] = id
      out[#out + 1] = entries[i]
    end
  end
end
return out
`

// KEYS[1] = the swarms zset, then seeders, leechers, done per manifest; ARGV = now, seenSince, manifests
const SCRAPE_LUA = `
local now, since = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 3, #ARGV do
  local k = 2 + (i - 3) * 3
  local d = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if d and tonumber(d) >= now then
    out[#out + 1] = redis.call('ZCOUNT', KEYS[k], since, '+inf')
    out[#out + 1] = redis.call('ZCOUNT', KEYS[k + 1], since, '+inf')
    out[#out + 1] = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
`

/** What the scripts return (RESP2: integers and bulk strings in one flat array). */
type ScriptReply = Array<string | number>

const ANNOUNCE_SCRIPT = defineScript({
  SCRIPT: ANNOUNCE_LUA,
  NUMBER_OF_KEYS: 12,
  parseCommand (parser: CommandParser, keys: string[], args: string[]) {
    for (const k of keys) parser.pushKey(k)
    parser.push(...args)
  },
  transformReply: (reply: unknown) => reply as ScriptReply
})

const SCRAPE_SCRIPT = defineScript({
  SCRIPT: SCRAPE_LUA,
  IS_READ_ONLY: true,
  // the number of keys varies: parseCommand pushes it
  parseCommand (parser: CommandParser, keys: string[], args: string[]) {
    parser.pushKeysLength(keys)
    parser.push(...args)
  },
  transformReply: (reply: unknown) => reply as ScriptReply
})

function makeClient (url: RedisUrl, connectTimeout: number, reconnect: (retries: number, cause: Error) => number | Error) {
  return createClient({
    socket: { host: url.host, port: url.port, connectTimeout, reconnectStrategy: reconnect },
    database: url.database,
    ...(url.username !== undefined ? { username: url.username } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    // fail fast while disconnected instead of queueing until Redis is back
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    scripts: { bitswarmAnnounce: ANNOUNCE_SCRIPT, bitswarmScrape: SCRAPE_SCRIPT }
  })
}

type Client = ReturnType<typeof makeClient>

interface EntryJson { s: string, c: 0 | 1, h: string, m: string[] }

export class RedisPeerStore implements PeerStore {
  /** host:port/db, for logs (the URL may hold a password: it is kept private) */
  readonly address: string
  readonly keyPrefix: string
  readonly limits: StoreLimits
  readonly peerTtl: number
  readonly commandTimeout: number
  readonly connectTimeout: number
  private readonly target: RedisUrl
  private readonly candidates = new CandidateCache()
  private client: Client | undefined
  private starting: Promise<void> | undefined
  private closed = false
  /** why Redis cannot be reached, for the StoreUnavailableError message */
  private lastError: Error | undefined
  private readonly log: (line: string) => void
  /** the connection was lost after start and not yet regained: the next 'ready' is news */
  private lost = false

  constructor (init: RedisPeerStoreInit) {
    this.target = parseRedisUrl(init.url)
    this.address = `${this.target.host.includes(':') ? `[${this.target.host}]` : this.target.host}:${this.target.port}/${this.target.database}`
    this.keyPrefix = init.keyPrefix ?? DEFAULT_KEY_PREFIX
    if (typeof this.keyPrefix !== 'string' || this.keyPrefix === '') throw new StoreConfigError('keyPrefix must be a non-empty string')
    this.limits = storeLimits(init)
    this.peerTtl = positive('peerTtl', init.peerTtl ?? DEFAULT_REDIS_PEER_TTL, 'seconds')
    this.commandTimeout = positive('commandTimeout', init.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT, 'ms')
    this.connectTimeout = positive('connectTimeout', init.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT, 'ms')
    this.log = init.log ?? (() => {})
  }

  /**
   * Connects; rejects with StoreUnavailableError when no connection is made within connectTimeout
   * (retrying meanwhile: Redis may be starting too). Once connected, losing Redis never ends the
   * store: it reconnects in the background until close().
   */
  async start (): Promise<void> {
    if (this.closed) throw new StoreUnavailableError('redis unavailable: store closed')
    this.starting ??= this.connect()
    return await this.starting
  }

  private async connect (): Promise<void> {
    const deadline = Date.now() + this.connectTimeout
    let ready = false
    const client = makeClient(this.target, this.connectTimeout, (retries, cause) => {
      this.lastError = cause
      if (!ready && Date.now() >= deadline) return cause
      return Math.min(50 * 2 ** Math.min(retries, 10), MAX_BACKOFF_MS)
    })
    // the client emits 'error' on every failed (re)connection: without a listener Node would throw
    client.on('error', (err: unknown) => {
      this.lastError = err instanceof Error ? err : new Error(String(err))
      // one line per outage, not one per reconnection attempt
      if (ready && !this.lost && !this.closed) {
        this.lost = true
        this.log(`redis: lost ${this.address}: ${this.lastError.message}; answering 503 until it is back`)
      }
    })
    client.on('ready', () => {
      ready = true
      this.lastError = undefined
      if (this.lost) this.log(`redis: ${this.address} is back`)
      this.lost = false
    })
    this.client = client
    let timer: NodeJS.Timeout | undefined
    const connecting = client.connect()
    connecting.catch(() => {})
    try {
      await Promise.race([
        connecting,
        new Promise((_resolve, reject) => {
          timer = setTimeout(() => { reject(new Error(`no connection within ${this.connectTimeout} ms`)) }, this.connectTimeout + 100)
        })
      ])
    } catch (err) {
      this.client = undefined
      this.starting = undefined
      try { client.destroy() } catch {}
      const why = this.lastError?.message ?? (err instanceof Error ? err.message : String(err))
      throw new StoreUnavailableError(`redis unavailable: ${why}`)
    } finally {
      clearTimeout(timer)
    }
    if (this.closed) {
      this.client = undefined
      try { client.destroy() } catch {}
      throw new StoreUnavailableError('redis unavailable: store closed')
    }
  }

  async close (): Promise<void> {
    this.closed = true
    const client = this.client
    this.client = undefined
    if (client == null) return
    try {
      // pending commands are answered if Redis is there; never wait longer than a command may take
      if (client.isReady) await withTimeout(client.close(), this.commandTimeout)
    } catch {}
    try { client.destroy() } catch {}
  }

  /** true while connected to Redis */
  get isReady (): boolean {
    return this.client?.isReady ?? false
  }

  async announce (a: StoreAnnounce): Promise<StoreAnnounceResult> {
    if (a.seq < 0n) throw new RangeError('seq must not be negative')
    const p = this.keyPrefix
    const sw = (part: string): string => `${p}swarm:${a.manifest}:${part}`
    const keys = [
      sw('seeders'), sw('leechers'), sw('addrs'), sw('data'), sw('done'),
      `${p}seq:${a.manifest}:${a.peerId}`, `${p}swarms`, `${p}live`, `${p}entries`,
      `${p}peer:${a.peerId}`, `${p}host:${a.host}`, `${p}remembered`
    ]
    const keyTtlMs = Math.max(this.peerTtl * 1000, a.now - a.seenSince) + TTL_SLACK_MS
    const args = [
      p, a.manifest, a.peerId, a.seq.toString(), a.event ?? '',
      JSON.stringify(a.multiaddrs), a.multiaddrs.length > 0 ? '1' : '0', a.left === 0 ? '1' : '0', a.host,
      String(a.now), String(a.seenSince), String(sampleSize(a.numwant)),
      String(this.limits.maxPeersPerManifest), String(this.limits.maxManifests), String(this.limits.maxPeersTotal),
      String(this.limits.maxSwarmsPerPeer), String(this.limits.maxPeersPerIp),
      String(this.limits.replayWindowMs), String(this.limits.historyTtlMs), String(keyTtlMs), String(TTL_SLACK_MS)
    ]
    const reply = await this.run(async c => await c.bitswarmAnnounce(keys, args))
    const status = reply[0]
    if (status === 'stale') {
      throw new StaleRecordError(`record seq ${a.seq} is not newer than the last accepted (${String(reply[1])})`)
    }
    if (status === 'quota') {
      if (reply[1] === 'peer') throw new QuotaExceededError(`peer is in too many swarms (max ${this.limits.maxSwarmsPerPeer})`)
      throw new QuotaExceededError(`too many peers announced from this address (max ${this.limits.maxPeersPerIp})`)
    }
    if (status === 'full') {
      if (reply[1] === 'swarms') throw new TrackerFullError(`tracker is full (max ${this.limits.maxManifests} swarms)`)
      if (reply[1] === 'swarm') throw new TrackerFullError(`swarm is full (max ${this.limits.maxPeersPerManifest} peers)`)
      throw new TrackerFullError(`tracker is full (max ${this.limits.maxPeersTotal} peers)`)
    }
    if (status !== 'ok') throw new StoreUnavailableError(`redis unavailable: unexpected script reply ${String(status)}`)
    const candidates: PeerCandidate[] = []
    for (let i = 4; i + 1 < reply.length; i += 2) candidates.push(this.candidates.get(String(reply[i]), String(reply[i + 1])))
    return { candidates, counts: { complete: Number(reply[1]), incomplete: Number(reply[2]), downloaded: Number(reply[3]) } }
  }

  async scrape (manifests: string[], seenSince: number, now: number): Promise<SwarmCounts[]> {
    if (manifests.length === 0) return []
    const p = this.keyPrefix
    const keys = [`${p}swarms`]
    for (const m of manifests) keys.push(`${p}swarm:${m}:seeders`, `${p}swarm:${m}:leechers`, `${p}swarm:${m}:done`)
    const reply = await this.run(async c => await c.bitswarmScrape(keys, [String(now), String(seenSince), ...manifests]))
    return manifests.map((_m, i) => ({
      complete: Number(reply[i * 3]),
      incomplete: Number(reply[i * 3 + 1]),
      downloaded: Number(reply[i * 3 + 2])
    }))
  }

  async swarms (seenSince: number, now: number): Promise<SwarmSummary[]> {
    const held = await this.run(async c => await c.zRangeByScore(`${this.keyPrefix}swarms`, now, '+inf'))
    const out: SwarmSummary[] = []
    for (let i = 0; i < held.length; i += SWARMS_CHUNK) {
      const chunk = held.slice(i, i + SWARMS_CHUNK)
      const counts = await this.scrape(chunk, seenSince, now)
      chunk.forEach((manifest, j) => { out.push({ manifest, ...counts[j] }) })
    }
    return out
  }

  /**
   * Runs one operation with the fail-fast rules: refused at once while disconnected, abandoned
   * after commandTimeout (its late reply is ignored), every client error as StoreUnavailableError.
   */
  private async run<T> (op: (client: Client) => Promise<T>): Promise<T> {
    const client = this.client
    if (client == null) throw new StoreUnavailableError(`redis unavailable: ${this.closed ? 'store closed' : 'not started (call start())'}`)
    if (!client.isReady) throw new StoreUnavailableError(`redis unavailable: ${this.lastError?.message ?? 'not connected'}`)
    const pending = op(client)
    try {
      return await withTimeout(pending, this.commandTimeout)
    } catch (err) {
      if (err instanceof TimeoutError) throw new StoreUnavailableError(`redis timed out after ${this.commandTimeout} ms`)
      // an error reply (OOM, LOADING, BUSY, …) says why Redis cannot serve; for a dropped socket
      // the connection's own error says more than the client's generic one
      if (err instanceof ErrorReply) throw new StoreUnavailableError(`redis unavailable: ${err.message}`)
      const why = err instanceof Error ? err.message : String(err)
      throw new StoreUnavailableError(`redis unavailable: ${this.lastError?.message ?? why}`)
    }
  }
}

/**
 * Parsed candidates by their stored entry: a peer listed in many answers between two of its own
 * announces is parsed once, and stays one object, so the answer caches of logic.ts and http.ts
 * (keyed by object) hit as they do on the memory store. Without it, 100 fresh objects an announce
 * cost more CPU (parsing, those caches' misses, garbage) than the Redis round trip. Bounded: two
 * generations of at most CANDIDATE_CACHE entries, the older dropped as a whole.
 */
class CandidateCache {
  private current = new Map<string, PeerCandidate>()
  private previous = new Map<string, PeerCandidate>()

  get (peerId: string, raw: string): PeerCandidate {
    // the entry holds its seq, so a peer's every announce makes a new key: never a stale address
    const key = `${peerId} ${raw}`
    let c = this.current.get(key)
    if (c !== undefined) return c
    c = this.previous.get(key)
    if (c === undefined) {
      const e = JSON.parse(raw) as EntryJson
      c = { peerId, multiaddrs: e.m, host: e.h }
    }
    if (this.current.size >= CANDIDATE_CACHE) {
      this.previous = this.current
      this.current = new Map()
    }
    this.current.set(key, c)
    return c
  }
}

const CANDIDATE_CACHE = 20_000

/** how many candidates the script may return: at least numwant, bounded for huge swarms */
function sampleSize (numwant: number): number {
  const n = Number.isFinite(numwant) && numwant > 0 ? Math.floor(numwant) : 0
  return Math.min(Math.max(n * 2, 50), 2000)
}

class TimeoutError extends Error {}

async function withTimeout<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new TimeoutError()) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
    // an abandoned command may still fail later (socket closed): never an unhandled rejection
    p.catch(() => {})
  }
}

function positive (name: string, value: number, unit: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new StoreConfigError(`${name} must be a positive number of ${unit}`)
  return value
}
