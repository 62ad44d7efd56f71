/**
 * Benchmark: sharing a folder. Real processes only (`bitswarm create`, `bitswarm tracker`,
 * `bitswarm seed`, `bitswarm get --json`, and the system's `sha256sum`), all on 127.0.0.1 with
 * `--no-dht`, fresh state directories every run. RUNS runs (default 3); each figure is the median
 * with min–max. Results: bench/results/folder.md and bench/results/folder.json.
 *
 * Data, generated once: a BIG_MIB (default 1024) MiB file of random bytes; a folder `tree/` of
 * TREE_DIRS (default 100) subfolders of TREE_FILES (default 100) files of FILE_KIB (default 4) KiB
 * of random bytes (10,000 files, 40,960,000 bytes); and `tree.bin`, the same bytes as one file
 * (the folder's files concatenated in sorted path order). Everything is read once before the
 * first run, so every timing below is warm (the page cache holds the data; nothing is dropped).
 *
 * Scenarios (SCENARIOS="1,3" selects some):
 *  1. `bitswarm create <1 GiB file> --json` against `sha256sum <file>`, alternately (which goes
 *     first alternates between runs). Both timed from spawn to exit, process start included.
 *     Goals: create's MiB/s ≥ 0.8 × sha256sum's; the create process's peak RSS < 250 MB.
 *  2. `bitswarm create tree/ --json` against `find tree -type f -print0 | xargs -0 sha256sum`,
 *     the same way. Goals: ≥ 2,000 files/s; peak RSS < 250 MB.
 *  3. A 3-leecher swarm: a tracker, a seeder and three leechers (`get --seed`, spawned together)
 *     on `tree/`, and the same on `tree.bin` (which goes first alternates between runs). Time:
 *     the leechers' spawn → the last `complete`. Goal: folder ≤ 1.5 × single file (per run, in the
 *     same run). Every download is checked after the timing: each leecher's DIR/tree with
 *     `diff -r` against the source folder, each tree.bin by SHA-256. The leechers print stats
 *     every STATS_S (default 0.25) s, which splits the time in two: spawn → every leecher holds
 *     every piece (the transfer), and then → `complete` (a folder's finalize: 10,000 files made,
 *     written and named; a single file is only renamed). Then, in the same run, the floor of
 *     that finalize on this file system: three processes at once each making the folder's files
 *     under part names and naming them, in a tight loop of synchronous calls (placeFloor).
 *
 * Where the data lives matters for scenario 3: the base directory is under os.tmpdir() (TMPDIR).
 * On an ext4 without a journal, making a file skips every inode of its group deleted in the last
 * minute or so (five if its table block is still dirty), one lookup each, so a /tmp that other
 * programs fill and empty can make each of the 10,000 files a folder download makes cost ~0.5 ms
 * instead of ~30 µs, and finalize take seconds (measured on the 2-core test box: 10,000 files made
 * in 2.6 s in /tmp, 0.26 s in /var/tmp). TMPDIR=/var/tmp (or another quiet folder) avoids that.
 *
 * Peak RSS: VmRSS of /proc/<pid>/status every 50 ms while the process runs (as bench/memory.ts);
 * a peak shorter than 50 ms can be missed. 250 MB = 250·10⁶ bytes.
 * Each swarm starts after a `sync` (the last run's writes reach the disk before, not during, the
 * timing), and its directory is removed only at the end (see withRun's keepDir).
 * Ctrl-C, a failure or the end stop every process we started and remove the temporary directory.
 */
import '../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pipeline } from 'node:stream/promises'
import {
  CLI, closeBaseDir, CORES, dataFile, envNumber, median, MiB, mibps, openBaseDir, Proc, RESULTS,
  resultsHeader, rss, type Run, secs, TimeoutError, withRun
} from './procs.js'

const RUNS = Math.round(envNumber('RUNS', 3))
const BIG_MIB = envNumber('BIG_MIB', 1024)
const TREE_DIRS = Math.round(envNumber('TREE_DIRS', 100))
const TREE_FILES = Math.round(envNumber('TREE_FILES', 100))
const FILE_KIB = envNumber('FILE_KIB', 4)
const LEECHERS = 3
const STATS_S = envNumber('STATS_S', 0.25)
const SCENARIOS = new Set((process.env.SCENARIOS ?? '1,2,3').split(',').map(s => Number(s.trim())).filter(n => n >= 1 && n <= 3))

const FILES = TREE_DIRS * TREE_FILES
const FILE_BYTES = Math.round(FILE_KIB * 1024)
const TREE_BYTES = FILES * FILE_BYTES
const BIG_BYTES = Math.round(BIG_MIB * MiB)
const RSS_GOAL_MB = 250
const SAMPLE_MS = 50
const TREE = 'tree'

// ---------------------------------------------------------------------------------------------
// shell commands (sha256sum, diff): own process groups, killed with the benchmark

const shells = new Set<ChildProcess>()

function killShells (): void {
  for (const c of shells) {
    try { if (c.pid != null) process.kill(-c.pid, 'SIGKILL') } catch {}
  }
  shells.clear()
}
// procs.ts's SIGINT handler ends with process.exit(130): "exit" still runs, and kills these too
process.once('exit', killShells)

/** Runs `argv` (its own process group); spawn → exit in ms; rejects on a non-zero exit. */
async function timed (argv: string[], timeoutMs: number): Promise<{ ms: number, stdout: string }> {
  const t0 = performance.now()
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  shells.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { if (stdout.length < 1e6) stdout += s })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < 4096) stderr += s })
  const timer = setTimeout(() => { try { process.kill(-(child.pid ?? 0), 'SIGKILL') } catch {} }, timeoutMs)
  try {
    return await new Promise((resolve, reject) => {
      let ms = 0
      child.once('exit', () => { ms = performance.now() - t0 })
      child.once('error', reject)
      child.once('close', (code, signal) => {
        if (code === 0) resolve({ ms, stdout })
        else if (signal === 'SIGKILL') reject(new TimeoutError(argv.join(' ')))
        else reject(new Error(`${argv.join(' ')} exited ${String(code ?? signal)}: ${stderr.trim().slice(0, 500)}`))
      })
    })
  } finally {
    clearTimeout(timer)
    shells.delete(child)
  }
}

const sh = (script: string, ...args: string[]): string[] => ['sh', '-c', script, 'sh', ...args]

// ---------------------------------------------------------------------------------------------
// data

interface Data { big: string, tree: string, treeBin: string, treeBinSha: string }

/** 100 folders of 100 files of random bytes, and the same bytes as one file, in sorted order. */
async function makeTree (base: string): Promise<{ tree: string, treeBin: string, treeBinSha: string }> {
  const tree = join(base, 'src', TREE)
  const treeBin = join(base, 'src-bin', `${TREE}.bin`)
  await mkdir(join(base, 'src-bin'), { recursive: true })
  const out = createWriteStream(treeBin)
  const hash = createHash('sha256')
  const pad = (n: number, max: number): string => String(n).padStart(String(max - 1).length, '0')
  for (let d = 0; d < TREE_DIRS; d++) {
    // fixed-width names: the creation order is the sorted (byte-wise) order
    const dir = join(tree, `dir-${pad(d, TREE_DIRS)}`)
    await mkdir(dir, { recursive: true })
    for (let f = 0; f < TREE_FILES; f++) {
      const bytes = randomBytes(FILE_BYTES)
      await writeFile(join(dir, `file-${pad(f, TREE_FILES)}.bin`), bytes)
      hash.update(bytes)
      if (!out.write(bytes)) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
    }
  }
  await new Promise<void>((resolve, reject) => { out.end(() => { resolve() }); out.once('error', reject) })
  if ((await stat(treeBin)).size !== TREE_BYTES) throw new Error(`short write of ${treeBin}`)
  return { tree, treeBin, treeBinSha: hash.digest('hex') }
}

async function sha256File (path: string): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(path), h)
  return h.digest('hex')
}

/** Reads everything once, so that every run finds it in the page cache. */
async function warm (d: Data): Promise<void> {
  await timed(sh('cat "$1" > /dev/null && find "$2" -type f -print0 | xargs -0 cat > /dev/null && cat "$3" > /dev/null', d.big, d.tree, d.treeBin), 600_000)
}

// ---------------------------------------------------------------------------------------------
// create

interface Created { ms: number, peakRss: number, cid: string, event: Record<string, unknown> }

/**
 * `bitswarm create <path> --manifest <tmp> --json`: spawn → exit, with the peak RSS. The manifest
 * goes to a fresh directory outside the data (and is removed), so no run sees an earlier one.
 */
async function create (base: string, path: string, timeoutMs: number): Promise<Created> {
  const dir = await mkdtemp(join(base, 'create-'))
  const p = new Proc('create', CLI, ['create', path, '--manifest', join(dir, 'out.bitswarm'), '--json'], { BITSWARM_STATE_DIR: join(dir, 'state') })
  let exitAt = 0
  p.child.once('exit', () => { exitAt = performance.now() })
  let peak = 0
  const pid = p.child.pid
  const sampler = setInterval(() => { void rss(pid).then(r => { if (!p.exited) peak = Math.max(peak, r) }) }, SAMPLE_MS)
  void rss(pid).then(r => { peak = Math.max(peak, r) })
  try {
    const created = await p.until(e => e.event === 'created', performance.now() + timeoutMs, '`created`')
    await new Promise<void>(resolve => { if (exitAt > 0) resolve(); else p.child.once('exit', () => { resolve() }) })
    if (p.child.exitCode !== 0) throw new Error(`create exited ${String(p.child.exitCode ?? p.child.signalCode)} after \`created\``)
    const cid = String(created.e.cid)
    if (cid === '' || created.e.cid == null) throw new Error(`\`created\` without a cid: ${JSON.stringify(created.e)}`)
    return { ms: exitAt - p.spawnedAt, peakRss: peak, cid, event: created.e }
  } finally {
    clearInterval(sampler)
    await p.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// swarm

interface SwarmTimes { last: number, first: number, transfer: number, seedStart: number, pieces: number, finalize: number }

/** One seeder and three `get --seed` leechers spawned together on `source`; checks every download. */
async function swarmOnce (run: Run, d: Data, kind: 'folder' | 'file'): Promise<SwarmTimes> {
  const source = kind === 'folder' ? d.tree : d.treeBin
  // the last run's writes go to disk now, not during this run's timing
  await timed(['sync'], 300_000)
  const announce = await run.tracker()
  const seeder = await run.seeder(source, announce)
  const seeding = seeder.proc.last('seeding')
  if (seeding == null) throw new Error('no `seeding` event')
  if (kind === 'folder' && Number(seeding.e.files) !== FILES) throw new Error(`\`seeding\` says ${String(seeding.e.files)} files, expected ${FILES}`)
  const t0 = performance.now()
  const leechers = Array.from({ length: LEECHERS }, (_, i) => run.leecher(i, seeder.cid, announce, ['--seed', '--stats-interval', String(STATS_S)]))
  const manifests = await Promise.all(leechers.map(async l => await l.until(e => e.event === 'manifest', run.deadline, 'manifest')))
  const completes = await Promise.all(leechers.map(async l => await l.until(e => e.event === 'complete', run.deadline, 'complete')))
  const last = Math.max(...completes.map(c => c.at))
  const first = Math.min(...completes.map(c => c.at))
  // when each leecher held every piece: its first stats line that says so, or its `complete` if
  // that came first (a single file has no finalize to speak of)
  const held = leechers.map((l, i) => Math.min(completes[i].at, l.events.find(x => x.e.event === 'stats' && x.e.pieces === x.e.have && Number(x.e.pieces) > 0)?.at ?? Infinity))
  // checked after the timing, the leechers still running
  for (const [i, c] of completes.entries()) {
    if (Number(c.e.bytes) !== TREE_BYTES) throw new Error(`leecher ${i}: complete with ${String(c.e.bytes)} bytes, expected ${TREE_BYTES}`)
    const out = join(run.dir, `out${i}`)
    const expected = join(out, kind === 'folder' ? TREE : `${TREE}.bin`)
    const path = typeof c.e.path === 'string' ? c.e.path : expected
    if (path !== expected) throw new Error(`leecher ${i}: complete path ${path}, expected ${expected}`)
    if (kind === 'folder') {
      await timed(['diff', '-r', '-q', d.tree, path], 300_000).catch((err: Error) => { throw new Error(`leecher ${i}: diff -r ${d.tree} ${path}: ${err.message}`) })
    } else if (await sha256File(path) !== d.treeBinSha) {
      throw new Error(`leecher ${i}: ${path} has the wrong SHA-256`)
    }
  }
  return {
    last: secs(last - t0),
    first: secs(first - t0),
    transfer: secs(last - Math.min(...manifests.map(m => m.at))),
    seedStart: secs(seeding.at - seeder.proc.spawnedAt),
    pieces: secs(Math.max(...held) - t0),
    finalize: secs(Math.max(...completes.map((c, i) => c.at - held[i])))
  }
}

/**
 * The file system's floor for what a folder download's finalize must do: LEECHERS processes at
 * once, each making FILES part files of FILE_BYTES (create exclusively, write, close), then
 * giving each its final name in TREE_DIRS folders (link, unlink the part name), with synchronous
 * calls in a tight loop: no hashing, no checks, no network. Returns the slowest process's time
 * for that loop in seconds (Node's start excluded).
 */
async function placeFloor (dir: string): Promise<number> {
  const script = `
const fs = require('node:fs'); const [dir, dirs, per, size] = [process.argv[1], +process.argv[2], +process.argv[3], +process.argv[4]]
const buf = Buffer.alloc(size, 7); fs.mkdirSync(dir + '/parts', { recursive: true })
const t0 = performance.now()
for (let i = 0; i < dirs * per; i++) { const fd = fs.openSync(dir + '/parts/' + i, 'wx'); fs.writeSync(fd, buf, 0, size, 0); fs.closeSync(fd) }
for (let d = 0; d < dirs; d++) { fs.mkdirSync(dir + '/d' + d); for (let i = 0; i < per; i++) { const p = dir + '/parts/' + (d * per + i); fs.linkSync(p, dir + '/d' + d + '/' + i); fs.unlinkSync(p) } }
console.log(performance.now() - t0)`
  const runs = await Promise.all(Array.from({ length: LEECHERS }, async (_, i) =>
    await timed([process.execPath, '-e', script, join(dir, `floor${i}`), String(TREE_DIRS), String(TREE_FILES), String(FILE_BYTES)], 300_000)))
  return secs(Math.max(...runs.map(r => Number(r.stdout.trim()))))
}

// ---------------------------------------------------------------------------------------------
// scenarios

interface Figure { key: string, label: string, unit: string, digits: number, goal?: { op: '>=' | '<=' | '<', value: number } }

type Values = Record<string, number>

interface Outcome { run: number, status: 'ok' | 'timeout' | 'failed', message?: string, values: Values }

interface Scenario { id: number, title: string, figures: Figure[], notes: string[], once: (run: number) => Promise<Values> }

interface Summary extends Figure { median: number | null, min: number | null, max: number | null, met: boolean | null }

interface Report { id: number, title: string, runs: Outcome[], figures: Summary[], notes: string[] }

const rssFigure = (key: string): Figure => ({ key, label: '`create` peak RSS', unit: 'MB', digits: 0, goal: { op: '<', value: RSS_GOAL_MB } })

/** Runs `a` and `b` in an order that alternates with the run number. */
async function alternately<A, B> (n: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (n % 2 === 0) { const x = await a(); return [x, await b()] }
  const y = await b()
  return [await a(), y]
}

function scenario1 (base: string, d: Data): Scenario {
  const timeoutMs = 120_000 + BIG_MIB * 200
  return {
    id: 1,
    title: `\`create\` on one ${BIG_MIB} MiB file vs \`sha256sum\``,
    figures: [
      { key: 'createRate', label: '`bitswarm create <file> --json`', unit: 'MiB/s', digits: 0 },
      { key: 'shaRate', label: '`sha256sum <file>`', unit: 'MiB/s', digits: 0 },
      { key: 'ratio', label: 'create / sha256sum (per run)', unit: '×', digits: 2, goal: { op: '>=', value: 0.8 } },
      { key: 'createS', label: '`create`, spawn → exit', unit: 's', digits: 2 },
      { key: 'shaS', label: '`sha256sum`, spawn → exit', unit: 's', digits: 2 },
      rssFigure('rss')
    ],
    notes: [],
    once: async (n) => {
      const [c, s] = await alternately(n,
        async () => await create(base, d.big, timeoutMs),
        async () => await timed(['sha256sum', d.big], timeoutMs))
      return { createRate: mibps(BIG_BYTES, c.ms), shaRate: mibps(BIG_BYTES, s.ms), ratio: s.ms / c.ms, createS: secs(c.ms), shaS: secs(s.ms), rss: c.peakRss / 1e6 }
    }
  }
}

function scenario2 (base: string, d: Data): Scenario {
  const timeoutMs = 120_000 + FILES * 20
  return {
    id: 2,
    title: `\`create\` on a folder of ${FILES.toLocaleString('en')} files of ${FILE_KIB} KiB (${TREE_DIRS} folders of ${TREE_FILES}) vs \`sha256sum\``,
    figures: [
      { key: 'createFiles', label: '`bitswarm create <folder> --json`', unit: 'files/s', digits: 0, goal: { op: '>=', value: 2000 } },
      { key: 'shaFiles', label: '`find <folder> -type f -print0 | xargs -0 sha256sum`', unit: 'files/s', digits: 0 },
      { key: 'createRate', label: '`create`', unit: 'MiB/s', digits: 1 },
      { key: 'shaRate', label: '`find | xargs sha256sum`', unit: 'MiB/s', digits: 1 },
      { key: 'ratio', label: 'create / sha256sum (per run)', unit: '×', digits: 2 },
      { key: 'createS', label: '`create`, spawn → exit', unit: 's', digits: 2 },
      { key: 'shaS', label: '`find | xargs sha256sum`, spawn → exit', unit: 's', digits: 2 },
      rssFigure('rss')
    ],
    notes: ['The 0.8 × sha256sum goal is the 1 GiB file\'s (scenario 1); for 4 KiB files the ratio is shown, the goal is files/s.'],
    once: async (n) => {
      const [c, s] = await alternately(n,
        async () => await create(base, d.tree, timeoutMs),
        async () => await timed(sh('find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null', d.tree), timeoutMs))
      return {
        createFiles: FILES / secs(c.ms),
        shaFiles: FILES / secs(s.ms),
        createRate: mibps(TREE_BYTES, c.ms),
        shaRate: mibps(TREE_BYTES, s.ms),
        ratio: s.ms / c.ms,
        createS: secs(c.ms),
        shaS: secs(s.ms),
        rss: c.peakRss / 1e6
      }
    }
  }
}

function scenario3 (d: Data): Scenario {
  const timeoutMs = envNumber('SWARM_TIMEOUT_S', 600) * 1000
  return {
    id: 3,
    title: `one seeder, ${LEECHERS} leechers (\`get --seed\`, spawned together): the folder vs the same ${(TREE_BYTES / MiB).toFixed(1)} MiB as one file`,
    figures: [
      { key: 'ratio', label: 'folder / single file, last `complete` (per run)', unit: '×', digits: 2, goal: { op: '<=', value: 1.5 } },
      { key: 'folderLast', label: 'folder: spawn → last `complete`', unit: 's', digits: 2 },
      { key: 'fileLast', label: 'single file: spawn → last `complete`', unit: 's', digits: 2 },
      { key: 'folderFirst', label: 'folder: spawn → first `complete`', unit: 's', digits: 2 },
      { key: 'fileFirst', label: 'single file: spawn → first `complete`', unit: 's', digits: 2 },
      { key: 'folderTransfer', label: 'folder: first `manifest` → last `complete`', unit: 's', digits: 2 },
      { key: 'fileTransfer', label: 'single file: first `manifest` → last `complete`', unit: 's', digits: 2 },
      { key: 'folderFiles', label: 'folder: files/s delivered (3 × files / last time)', unit: 'files/s', digits: 0 },
      { key: 'piecesRatio', label: 'folder / single file, spawn → every leecher holds every piece (per run)', unit: '×', digits: 2 },
      { key: 'folderPieces', label: 'folder: spawn → every leecher holds every piece', unit: 's', digits: 2 },
      { key: 'filePieces', label: 'single file: spawn → every leecher holds every piece', unit: 's', digits: 2 },
      { key: 'folderFinalize', label: 'folder: every piece held → `complete` (finalize), slowest leecher', unit: 's', digits: 2 },
      { key: 'placeFloor', label: `floor: ${LEECHERS} processes at once each make ${FILES.toLocaleString('en')} files and name them (create, write, close, link, unlink), slowest`, unit: 's', digits: 2 },
      { key: 'finalizeFloor', label: 'finalize / that floor (per run)', unit: '×', digits: 2 },
      { key: 'folderSeed', label: 'folder seeder: spawn → `seeding` (hashes the folder)', unit: 's', digits: 2 },
      { key: 'fileSeed', label: 'single-file seeder: spawn → `seeding`', unit: 's', digits: 2 }
    ],
    notes: [
      'Each leecher\'s DIR/tree was checked with `diff -r` against the source folder and each tree.bin by SHA-256, after the timing; a mismatch fails the run.',
      `"Holds every piece" is each leecher's first stats line saying so (every ${STATS_S} s), or its \`complete\` if earlier.`,
      'The floor is the bare cost of the files themselves on this file system and these cores: what a finalize that makes each file under a part name and then names it cannot go below, however it is written. It runs after the two swarms, in the same run.'
    ],
    once: async (n) => {
      const one = async (kind: 'folder' | 'file'): Promise<SwarmTimes> => await withRun(timeoutMs, async (run) => await swarmOnce(run, d, kind), { keepDir: true })
      const [f, s] = await alternately(n, async () => await one('folder'), async () => await one('file'))
      const floor = await withRun(timeoutMs, async (run) => await placeFloor(run.dir), { keepDir: true })
      return {
        placeFloor: floor,
        finalizeFloor: f.finalize / floor,
        ratio: f.last / s.last,
        folderLast: f.last,
        fileLast: s.last,
        folderFirst: f.first,
        fileFirst: s.first,
        folderTransfer: f.transfer,
        fileTransfer: s.transfer,
        folderFiles: LEECHERS * FILES / f.last,
        piecesRatio: f.pieces / s.pieces,
        folderPieces: f.pieces,
        filePieces: s.pieces,
        folderFinalize: f.finalize,
        folderSeed: f.seedStart,
        fileSeed: s.seedStart
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// running and reporting

const fmt = (v: number | null | undefined, d: number): string => v == null || !Number.isFinite(v) ? '—' : v.toFixed(d)
const met = (f: Figure, v: number | null | undefined): boolean | null =>
  f.goal == null ? null : v == null || !Number.isFinite(v) ? false : f.goal.op === '>=' ? v >= f.goal.value : f.goal.op === '<' ? v < f.goal.value : v <= f.goal.value
const mark = (ok: boolean | null): string => ok === true ? ' ✅' : ok === false ? ' ❌' : ''
const goalText = (f: Figure): string => f.goal == null ? '' : `${{ '>=': '≥', '<=': '≤', '<': '<' }[f.goal.op]} ${f.goal.value.toLocaleString('en')}`
/** A label in a Markdown table: its `|` escaped (code spans included, as GFM wants). */
const cell = (s: string): string => s.replace(/\|/g, '\\|')
const spread = (f: Summary): string => f.median == null ? '—' : `${fmt(f.median, f.digits)} (${fmt(f.min, f.digits)}–${fmt(f.max, f.digits)})`

async function runScenario (s: Scenario): Promise<Report> {
  console.log(`\n[${s.id}] ${s.title}`)
  const runs: Outcome[] = []
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now()
    let o: Outcome
    try {
      o = { run: r + 1, status: 'ok', values: await s.once(r) }
    } catch (err) {
      const e = err as Error
      o = { run: r + 1, status: e instanceof TimeoutError ? 'timeout' : 'failed', message: e.message, values: {} }
    }
    runs.push(o)
    const shown = s.figures.filter(f => o.values[f.key] != null).map(f => `${f.key} ${fmt(o.values[f.key], f.digits)}${mark(met(f, o.values[f.key]))}`).join(', ')
    console.log(`  run ${r + 1}/${RUNS} (${((performance.now() - t) / 1000).toFixed(1)} s): ${o.status}${o.message != null ? ` — ${o.message}` : ''}${shown !== '' ? ` — ${shown}` : ''}`)
  }
  const figures = s.figures.map((f): Summary => {
    const vs = runs.filter(r => r.status === 'ok').map(r => r.values[f.key]).filter(v => Number.isFinite(v))
    const med = median(vs)
    return { ...f, median: med, min: vs.length > 0 ? Math.min(...vs) : null, max: vs.length > 0 ? Math.max(...vs) : null, met: med == null ? (f.goal == null ? null : false) : met(f, med) }
  })
  return { id: s.id, title: s.title, runs, figures, notes: s.notes }
}

function markdown (reports: Report[], header: Record<string, string>): string {
  const lines = ['# bitswarm folder benchmark (create, and a swarm on loopback)', '']
  for (const [k, v] of Object.entries(header)) lines.push(`- ${k}: ${v}`)
  lines.push('', '## Goals', '', '| # | figure | median (min–max) | goal | met |', '|---|---|---:|---|---|')
  for (const r of reports) {
    for (const f of r.figures.filter(f => f.goal != null)) {
      lines.push(`| ${r.id} | ${cell(f.label)} | ${spread(f)} ${f.unit} | ${goalText(f)} ${f.unit} | ${f.met === true ? '✅' : '❌'} |`)
    }
  }
  for (const r of reports) {
    lines.push('', `## ${r.id}. ${r.title}`, '',
      `| figure | ${r.runs.map(o => `run ${o.run}`).join(' | ')} | median (min–max) | unit | goal |`,
      `|---|${r.runs.map(() => '---:|').join('')}---:|---|---|`)
    for (const f of r.figures) {
      const cells = r.runs.map(o => o.status !== 'ok' ? o.status : `${fmt(o.values[f.key], f.digits)}${mark(met(f, o.values[f.key]))}`)
      const goal = f.goal == null ? '' : `${goalText(f)}${mark(f.met)}`
      lines.push(`| ${cell(f.label)} | ${cells.join(' | ')} | ${spread(f)} | ${f.unit} | ${goal} |`)
    }
    const notes = [...r.notes, ...r.runs.filter(o => o.status !== 'ok').map(o => `run ${o.run}: ${o.status}: ${o.message ?? ''}`)]
    if (notes.length > 0) lines.push('', ...notes.map(n => `- ${n}`))
  }
  lines.push('', '## Method', '',
    `- Data: one ${BIG_MIB} MiB file of random bytes; \`tree/\`: ${TREE_DIRS} folders × ${TREE_FILES} files × ${FILE_KIB} KiB of random bytes (${FILES.toLocaleString('en')} files, ${TREE_BYTES.toLocaleString('en')} bytes); \`tree.bin\`: the same bytes as one file. Generated once in the temporary directory, which also holds the runs' state and downloads.`,
    '- Warm cache: everything is read once before the first run and nothing is dropped; `create` and `sha256sum` run alternately (the first of the pair alternates between runs), so both see the same cache.',
    '- `create` and `sha256sum` times are from spawn to exit, process start included (Node\'s start is part of `create`\'s time). MiB = 2²⁰ bytes.',
    `- Peak RSS: VmRSS of the \`create\` process every ${SAMPLE_MS} ms; MB = 10⁶ bytes.`,
    '- Swarm: fresh tracker and state directories for each swarm, `--no-dht`, 127.0.0.1; the seeder has hashed its data before the leechers are spawned. Goals are judged on the medians; per-run marks are shown for the ratios.')
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const started = performance.now()
  const base = await openBaseDir('bitswarm-folder-bench-')
  const reports: Report[] = []
  try {
    const t = performance.now()
    const big = SCENARIOS.has(1) ? await dataFile(BIG_MIB) : ''
    const { tree, treeBin, treeBinSha } = await makeTree(base)
    const d: Data = { big, tree, treeBin, treeBinSha }
    if (big === '') await timed(sh('find "$1" -type f -print0 | xargs -0 cat > /dev/null && cat "$2" > /dev/null', tree, treeBin), 600_000)
    else await warm(d)
    console.log(`folder: data written and read once in ${((performance.now() - t) / 1000).toFixed(1)} s (${SCENARIOS.has(1) ? `${BIG_MIB} MiB file, ` : ''}${FILES} files of ${FILE_KIB} KiB, and those as one file) under ${base}; ${RUNS} runs`)
    const all = [scenario1(base, d), scenario2(base, d), scenario3(d)]
    for (const s of all) if (SCENARIOS.has(s.id)) reports.push(await runScenario(s))
  } finally {
    killShells()
    await closeBaseDir()
  }
  const header = resultsHeader(started, {
    runs: `${RUNS} (median, min–max over the runs that finished)`,
    cache: 'warm: the data is read once before the first run; create and sha256sum alternate',
    sha256sum: 'GNU coreutils, single-threaded',
    // see the header: file creation there can dominate a folder download's finalize
    'temporary folder': tmpdir()
  })
  const md = markdown(reports, header)
  await mkdir(RESULTS, { recursive: true })
  await writeFile(join(RESULTS, 'folder.md'), md)
  await writeFile(join(RESULTS, 'folder.json'), JSON.stringify({
    ...header,
    cores: CORES,
    config: { RUNS, BIG_MIB, TREE_DIRS, TREE_FILES, FILE_KIB, files: FILES, treeBytes: TREE_BYTES, leechers: LEECHERS, rssGoalMB: RSS_GOAL_MB, sampleMs: SAMPLE_MS, scenarios: [...SCENARIOS] },
    scenarios: reports
  }, (_, v: unknown) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2) + '\n')
  console.log('\nsummary:')
  for (const r of reports) {
    const ok = r.runs.filter(o => o.status === 'ok').length
    const shown = r.figures.slice(0, 3).map(f => `${f.key} ${fmt(f.median, f.digits)} ${f.unit}${f.goal != null ? ` (goal ${goalText(f)})${mark(f.met)}` : ''}`)
    const rssF = r.figures.find(f => f.key === 'rss')
    if (rssF != null) shown.push(`peak RSS ${fmt(rssF.median, 0)} MB (goal < ${RSS_GOAL_MB})${mark(rssF.met)}`)
    console.log(`  [${r.id}] ${ok}/${r.runs.length} runs ok — ${shown.join(', ')}`)
  }
  console.log(`results: ${join(RESULTS, 'folder.md')}, folder.json`)
}

await main()
