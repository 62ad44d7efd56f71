// End-to-end tests of folders (issue 12): real `bitswarm` processes (the built dist/bitswarm.mjs)
// on 127.0.0.1 with --no-dht: `create`, `info`, `seed <folder>`, `get` by CID, manifest file and
// share link, `--select`, resume after kill -9, planted symlinks, and the limits (--timeout,
// --seed-ratio, --seed-time, --max-download-rate). Small data: the whole file runs in seconds.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { lstat, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { CliProc, type JsonEvent, LOOPBACK, listTree, sha256File, tempDir, until, useProcessCleanup, writeRandomFile } from './procs.js'

const KiB = 1024
const MiB = 1024 * KiB

useProcessCleanup()

/** A folder to build: path inside it ('/'-separated) → size in bytes, or null for an empty folder. */
type TreeSpec = Record<string, number | null>

/** Writes `spec` under `root` (random bytes); returns the files' sizes by path. */
async function writeTree (root: string, spec: TreeSpec): Promise<Map<string, number>> {
  await mkdir(root, { recursive: true })
  const files = new Map<string, number>()
  for (const [path, size] of Object.entries(spec)) {
    const full = join(root, ...path.split('/'))
    if (size == null) {
      await mkdir(full, { recursive: true })
      continue
    }
    await mkdir(dirname(full), { recursive: true })
    await writeFile(full, randomBytes(size))
    files.set(path, size)
  }
  return files
}

const sum = (sizes: Iterable<number>): number => { let n = 0; for (const s of sizes) n += s; return n }

/** `diff -r a b`: resolves with its exit code and output (0 and '' when identical). */
async function diffR (a: string, b: string): Promise<{ code: number, output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('diff', ['-r', a, b], { maxBuffer: 16 * MiB })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const e = err as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}`.slice(0, 4000) }
  }
}

async function expectIdentical (source: string, copy: string): Promise<void> {
  const d = await diffR(source, copy)
  expect(d, `diff -r ${source} ${copy}`).toEqual({ code: 0, output: '' })
}

/** Every file under `dir` with its sha256 and every folder: to tell that nothing changed. */
async function snapshot (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const p of await listTree(dir)) {
    const full = join(dir, p)
    const st = await lstat(full)
    out[p] = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : await sha256File(full)
  }
  return out
}

/** The flags every peer gets: loopback only, no DHT, a state dir of its own. */
function peerFlags (dir: string, who: string): string[] {
  return ['--listen', LOOPBACK, '--no-dht', '--state-dir', join(dir, 'state', who), '--json']
}

async function startTracker (cwd: string): Promise<string> {
  const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--json'], { cwd })
  return String((await tracker.wait('listening', 15_000)).announce)
}

async function startSeeder (path: string, announce: string, cwd: string, extra: string[] = []): Promise<{ seeder: CliProc, seeding: JsonEvent }> {
  const seeder = new CliProc('seeder', ['seed', path, '--tracker', announce, ...peerFlags(cwd, 'seeder'), ...extra], { cwd })
  return { seeder, seeding: await seeder.wait('seeding', 30_000) }
}

async function create (path: string, cwd: string, extra: string[] = []): Promise<JsonEvent> {
  const p = new CliProc('create', ['create', path, '--json', ...extra], { cwd })
  const created = await p.wait('created', 30_000)
  expect(await p.waitExit(15_000), p.describe()).toEqual({ code: 0, signal: null })
  return created
}

/** Runs a command to its end; returns the process (its events, stdout, stderr and exit). */
async function run (name: string, args: string[], cwd: string, timeoutMs = 30_000): Promise<CliProc> {
  const p = new CliProc(name, args, { cwd })
  await p.waitExit(timeoutMs)
  return p
}

describe('folders, end to end', () => {
  it('a folder (nesting, empty file and folders, Unicode, 1,000 small files, two large) to 3 leechers by CID, manifest and link: diff -r identical', async () => {
    const dir = await tempDir()
    const name = 'Fotos ☀ Sommer 2024'
    const source = join(dir, 'data', name)
    const spec: TreeSpec = {
      'big/two.bin': 2 * MiB,
      'three.bin': 3 * MiB,
      'empty.txt': 0,
      leer: null,
      'a/b/c/leer tief': null,
      'a/b/c/d/deep.txt': 777,
      'ünïcødé/日本語 ファイル.txt': 1234,
      'ünïcødé/émoji 🎉.md': 99,
      'Ωmega/Ελληνικά.bin': 2048
    }
    for (let i = 0; i < 1000; i++) {
      spec[`many/g${String(i % 10).padStart(2, '0')}/f${String(i).padStart(4, '0')}.dat`] = KiB + (i * 37) % (2 * KiB)
    }
    const files = await writeTree(source, spec)
    const total = sum(files.values())

    const created = await create(source, dir)
    expect(created.manifest).toBe(`${source}.bitswarm`)
    expect(created.name).toBe(name)
    expect(created.bytes).toBe(total)
    expect(created.files).toBe(files.size)

    const announce = await startTracker(dir)
    const { seeding } = await startSeeder(source, announce, dir)
    expect(seeding.cid).toBe(created.cid)
    expect(seeding.files).toBe(files.size)
    const cid = String(seeding.cid)
    const link = String(seeding.link)
    expect(link).toMatch(/^bitswarm:\?/)

    const out = (i: number): string => join(dir, `out${i}`)
    const leechers = [
      new CliProc('by-cid', ['get', cid, '--tracker', announce, '--out', out(1), ...peerFlags(dir, 'l1')], { cwd: dir }),
      new CliProc('by-manifest', ['get', String(created.manifest), '--tracker', announce, '--out', out(2), ...peerFlags(dir, 'l2')], { cwd: dir }),
      // the link alone: its trackers and peers are where to look
      new CliProc('by-link', ['get', link, '--out', out(3), ...peerFlags(dir, 'l3')], { cwd: dir })
    ]
    const completes = await Promise.all(leechers.map(async l => await l.wait('complete', 45_000)))
    const exits = await Promise.all(leechers.map(async l => await l.waitExit(15_000)))
    for (const [i, c] of completes.entries()) {
      const l = leechers[i]
      expect(exits[i], l.describe()).toEqual({ code: 0, signal: null })
      expect(c.cid).toBe(cid)
      expect(c.path).toBe(join(out(i + 1), name))
      expect(c.bytes).toBe(total)
      await expectIdentical(source, String(c.path))
      expect((await stat(join(String(c.path), 'leer'))).isDirectory()).toBe(true)
      expect((await stat(join(String(c.path), 'a', 'b', 'c', 'leer tief'))).isDirectory()).toBe(true)
      expect(await readdir(join(String(c.path), 'leer'))).toEqual([])
      const empty = await stat(join(String(c.path), 'empty.txt'))
      expect(empty.isFile() && empty.size === 0).toBe(true)
      // nothing but the folder: no staging folder, part file or resume record left
      expect(await readdir(out(i + 1)), l.describe()).toEqual([name])
    }
  }, 90_000)

  it('--select: only the selected files land; a second get with another selection merges into the folder; a selection matching nothing exits 2', async () => {
    const dir = await tempDir()
    const name = 'auswahl'
    const source = join(dir, 'data', name)
    const sizes = await writeTree(source, {
      'a.txt': 40_000,
      'b.txt': 70_000,
      'empty.txt': 0,
      'c.bin': 120_000,
      'sub/x.bin': 90_000,
      'sub/deep/y.txt': 30_000,
      'sub/leer': null,
      'other/z.txt': 50_000,
      'other/w.bin': 200_000,
      'top-leer': null
    })
    const created = await create(source, dir)
    const manifest = String(created.manifest)
    const announce = await startTracker(dir)
    const { seeding } = await startSeeder(source, announce, dir)
    const cid = String(seeding.cid)
    const out = join(dir, 'out')

    // 1: sub/** and the .txt files at the top (a '*' never crosses '/': other/z.txt is not one)
    const first = new CliProc('select-1', ['get', cid, '--tracker', announce, '--out', out, '--select', 'sub/**', '--select', '*.txt', ...peerFlags(dir, 'l1')], { cwd: dir })
    const c1 = await first.wait('complete', 30_000)
    expect(await first.waitExit(15_000), first.describe()).toEqual({ code: 0, signal: null })
    const selected1 = ['a.txt', 'b.txt', 'empty.txt', 'sub/x.bin', 'sub/deep/y.txt']
    expect(c1.path).toBe(join(out, name))
    expect(c1.bytes).toBe(sum(selected1.map(p => sizes.get(p) ?? NaN)))
    expect(await listTree(out), first.describe()).toEqual([
      name, `${name}/a.txt`, `${name}/b.txt`, `${name}/empty.txt`, `${name}/sub`, `${name}/sub/deep`,
      `${name}/sub/deep/y.txt`, `${name}/sub/leer`, `${name}/sub/x.bin`
    ].sort())
    for (const p of selected1) expect(await sha256File(join(out, name, p)), p).toBe(await sha256File(join(source, p)))

    // 2: the rest, into the same --out: merged with what is there
    const second = new CliProc('select-2', ['get', manifest, '--tracker', announce, '--out', out, '--select', 'other/**', '--select', 'c.bin', '--select', 'top-leer', ...peerFlags(dir, 'l2')], { cwd: dir })
    const c2 = await second.wait('complete', 30_000)
    expect(await second.waitExit(15_000), second.describe()).toEqual({ code: 0, signal: null })
    expect(c2.path).toBe(join(out, name))
    expect(c2.bytes).toBe(sum(['c.bin', 'other/z.txt', 'other/w.bin'].map(p => sizes.get(p) ?? NaN)))
    await expectIdentical(source, join(out, name))
    expect(await readdir(out)).toEqual([name])

    // 3: a selection that matches no file: a usage error, nothing written
    const out3 = join(dir, 'out3')
    const none = await run('select-none', ['get', manifest, '--tracker', announce, '--out', out3, '--select', 'nothing/**', '--select', '*.jpg', ...peerFlags(dir, 'l3')], dir)
    expect(none.exit, none.describe()).toEqual({ code: 2, signal: null })
    expect(none.stderr.join('\n')).toMatch(/^bitswarm: .*no file matches the selection.*nothing\/\*\*/m)
    expect(none.events.filter(e => e.event === 'complete')).toEqual([])
    expect(existsSync(join(out3, name))).toBe(false)
  }, 60_000)

  it('resume of a folder after kill -9: the rerun logs resuming and completes identical', async () => {
    const dir = await tempDir()
    const name = 'weiter'
    const source = join(dir, 'data', name)
    const spec: TreeSpec = { 'r1.bin': 1536 * KiB, 'sub/r2.bin': 1536 * KiB, 'empty.txt': 0, leer: null }
    for (let i = 0; i < 40; i++) spec[`small/s${i}.dat`] = 3000 + i
    const total = sum((await writeTree(source, spec)).values())
    const announce = await startTracker(dir)
    // capped: the download takes a few seconds, time enough to kill it midway
    const { seeding } = await startSeeder(source, announce, dir, ['--max-upload-rate', '1MiB'])
    const cid = String(seeding.cid)
    const out = join(dir, 'out')
    const args = ['get', cid, '--tracker', announce, '--out', out, '--stats-interval', '0.2', ...peerFlags(dir, 'leecher')]

    const first = new CliProc('first', args, { cwd: dir })
    await until(() => Number(first.last('stats')?.have ?? 0) > 0 || !first.running, 30_000, () => `no stats with have > 0\n${first.describe()}`)
    expect(first.last('complete'), 'the download ended before it could be killed').toBeUndefined()
    const pieces = Number(first.last('stats')?.pieces)
    first.child.kill('SIGKILL')
    expect(await first.waitExit(10_000)).toEqual({ code: null, signal: 'SIGKILL' })
    expect(existsSync(join(out, `.bitswarm-${cid}.parts`)), `left after kill -9: ${(await listTree(out)).join(', ')}`).toBe(true)

    const second = new CliProc('second', args, { cwd: dir })
    const c = await second.wait('complete', 45_000)
    expect(await second.waitExit(15_000), second.describe()).toEqual({ code: 0, signal: null })
    const resuming = second.stderr.find(l => /resuming/.test(l))
    expect(resuming, second.describe()).toMatch(/resuming: \d+ of \d+ pieces/)
    const already = Number(/resuming: (\d+) of (\d+)/.exec(String(resuming))?.[1])
    expect(already, String(resuming)).toBeGreaterThan(0)
    expect(already).toBeLessThan(pieces)
    // what was already here was not fetched again
    expect(Number(second.last('stats')?.downloaded), JSON.stringify(second.last('stats'))).toBeLessThan(total)
    expect(c.path).toBe(join(out, name))
    await expectIdentical(source, join(out, name))
    expect(await readdir(out)).toEqual([name])
  }, 60_000)

  describe('planted symlinks are never written through', () => {
    async function setUp (): Promise<{ dir: string, name: string, source: string, cid: string, manifest: string, link: string, announce: string, sentinel: string, before: Record<string, string> }> {
      const dir = await tempDir()
      const name = 'ziel'
      const source = join(dir, 'data', name)
      await writeTree(source, { 'top.bin': 50_000, 'sub/inner.bin': 60_000, 'sub/more/x.txt': 500, 'empty.txt': 0 })
      const announce = await startTracker(dir)
      const { seeding } = await startSeeder(source, announce, dir)
      // outside every --out: must stay exactly as it is
      const sentinel = join(dir, 'sentinel')
      await writeTree(sentinel, { 'keep.txt': 100, 'sub/keep2.txt': 200 })
      return { dir, name, source, cid: String(seeding.cid), manifest: String(seeding.manifest), link: String(seeding.link), announce, sentinel, before: await snapshot(sentinel) }
    }

    /** a non-zero exit, no complete, and a "bitswarm:" line that names the link (`why` after it) */
    function expectClearFailure (p: CliProc, linkPath: string, why = 'is a symbolic link'): void {
      expect(p.exit?.signal, p.describe()).toBeNull()
      expect(p.exit?.code, p.describe()).not.toBe(0)
      expect(p.events.filter(e => e.event === 'complete')).toEqual([])
      const lines = p.stderr.filter(l => l.startsWith('bitswarm: '))
      expect(lines.length, p.describe()).toBeGreaterThan(0)
      expect(lines.join('\n'), p.describe()).toContain(`${linkPath} ${why}`)
    }

    it('a symlink at DIR/<name> to a folder outside DIR: get fails clearly, the outside folder is unchanged', async () => {
      const { dir, name, manifest, announce, sentinel, before } = await setUp()
      const out = join(dir, 'out')
      await mkdir(out)
      await symlink(sentinel, join(out, name))
      const p = await run('get', ['get', manifest, '--tracker', announce, '--out', out, ...peerFlags(dir, 'leecher')], dir)
      expectClearFailure(p, join(out, name))
      expect(await snapshot(sentinel)).toEqual(before)
      expect((await lstat(join(out, name))).isSymbolicLink()).toBe(true)
    })

    it('a symlink at DIR/<name>/<sub folder> to a folder outside DIR: get (by link) fails clearly, the outside folder is unchanged', async () => {
      const { dir, name, link, sentinel, before } = await setUp()
      const out = join(dir, 'out')
      await mkdir(join(out, name), { recursive: true })
      await symlink(sentinel, join(out, name, 'sub'))
      const p = await run('get', ['get', link, '--out', out, ...peerFlags(dir, 'leecher')], dir)
      expectClearFailure(p, join(out, name, 'sub'))
      expect(await snapshot(sentinel)).toEqual(before)
      expect((await lstat(join(out, name, 'sub'))).isSymbolicLink()).toBe(true)
    })

    it('a symlink at a final file name DIR/<name>/<file> to a file outside DIR: get fails clearly, the outside file is unchanged', async () => {
      const { dir, name, manifest, announce, sentinel, before } = await setUp()
      const out = join(dir, 'out')
      await mkdir(join(out, name, 'sub'), { recursive: true })
      await symlink(join(sentinel, 'keep.txt'), join(out, name, 'sub', 'inner.bin'))
      const p = await run('get', ['get', manifest, '--tracker', announce, '--out', out, ...peerFlags(dir, 'leecher')], dir)
      // a file already at a final name is never replaced, whatever it is
      expectClearFailure(p, join(out, name, 'sub', 'inner.bin'), 'already exists')
      expect(await snapshot(sentinel)).toEqual(before)
    })

    it('links at bitswarm\'s own names (staging folder, resume record, part files; symbolic and hard) are replaced, not written through: the get completes identical', async () => {
      const { dir, name, source, cid, manifest, announce, sentinel, before } = await setUp()
      // the staging folder and the resume record as symlinks out of DIR
      const out1 = join(dir, 'out1')
      await mkdir(out1)
      await symlink(sentinel, join(out1, `.bitswarm-${cid}.parts`))
      await symlink(join(sentinel, 'keep.txt'), join(out1, `.bitswarm-${cid}.resume`))
      const p1 = new CliProc('get1', ['get', manifest, '--tracker', announce, '--out', out1, ...peerFlags(dir, 'l1')], { cwd: dir })
      await p1.wait('complete', 30_000)
      expect(await p1.waitExit(15_000), p1.describe()).toEqual({ code: 0, signal: null })
      await expectIdentical(source, join(out1, name))
      expect(await snapshot(sentinel)).toEqual(before)

      // part files (named by file index, in a real staging folder of ours) as a symlink and a hard link
      const out2 = join(dir, 'out2')
      const staging = join(out2, `.bitswarm-${cid}.parts`)
      await mkdir(staging, { recursive: true, mode: 0o700 })
      const files = (await listTree(source)).filter(p => p !== 'sub' && p !== 'sub/more')
      expect(files.length).toBe(4)
      for (let i = 0; i < files.length; i++) {
        if (i % 2 === 0) await symlink(join(sentinel, 'keep.txt'), join(staging, String(i)))
        else await promisify(execFile)('ln', [join(sentinel, 'sub', 'keep2.txt'), join(staging, String(i))])
      }
      const p2 = new CliProc('get2', ['get', manifest, '--tracker', announce, '--out', out2, ...peerFlags(dir, 'l2')], { cwd: dir })
      await p2.wait('complete', 30_000)
      expect(await p2.waitExit(15_000), p2.describe()).toEqual({ code: 0, signal: null })
      await expectIdentical(source, join(out2, name))
      expect(await snapshot(sentinel)).toEqual(before)
    })
  })

  it('info: of a manifest (text and --json), of a seeder\'s link, and of create\'s link (same cid and name)', async () => {
    const dir = await tempDir()
    const name = 'Über ✓'
    const source = join(dir, 'data', name)
    const sizes = await writeTree(source, {
      'readme.txt': 1000,
      'docs/日本.md': 3000,
      'docs/deep/b.bin': 70_000,
      'empty.txt': 0,
      leer: null,
      'docs/auch leer': null
    })
    const announce = await startTracker(dir)
    const created = await create(source, dir, ['--tracker', announce])
    const manifest = String(created.manifest)
    expect(created).toMatchObject({ name, bytes: sum(sizes.values()), files: 4, folders: 2 })
    const wantFiles = [...sizes].map(([path, bytes]) => ({ path, bytes }))
    const byPath = (a: { path: string }, b: { path: string }): number => a.path < b.path ? -1 : a.path > b.path ? 1 : 0
    const sortedFiles = (files: unknown): Array<{ path: string, bytes: number }> => [...(files as Array<{ path: string, bytes: number }>)].sort(byPath)
    const checkInfo = (info: JsonEvent): void => {
      expect(info.cid).toBe(created.cid)
      expect(info.name).toBe(name)
      expect(info.bytes).toBe(created.bytes)
      expect(info.pieces).toBe(created.pieces)
      expect(info.pieceLength).toBe(created.pieceLength)
      expect(info.version).toBe(2)
      expect(sortedFiles(info.files)).toEqual(wantFiles.sort(byPath))
      expect([...(info.folders as string[])].sort()).toEqual(['docs/auch leer', 'leer'])
    }

    // a manifest file: text
    const text = await run('info-text', ['info', manifest], dir)
    expect(text.exit, text.describe()).toEqual({ code: 0, signal: null })
    const shown = text.stdout.join('\n')
    expect(shown).toContain(`name:     ${name}`)
    expect(shown).toContain(`cid:      ${String(created.cid)}`)
    for (const path of sizes.keys()) expect(shown).toMatch(new RegExp(`^ +\\S+ \\S+  ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
    expect(shown).toMatch(/\(folder\) {2}leer\/$/m)
    // a manifest file: --json
    const json = await run('info-json', ['info', manifest, '--json'], dir)
    expect(json.exit, json.describe()).toEqual({ code: 0, signal: null })
    checkInfo(await json.wait('info', 1000))

    // the seeder's link: the manifest comes from the swarm
    const { seeding } = await startSeeder(source, announce, dir)
    expect(seeding.cid).toBe(created.cid)
    const fromSeeder = await run('info-seeder-link', ['info', String(seeding.link), '--timeout', '20s', ...peerFlags(dir, 'info1')], dir)
    expect(fromSeeder.exit, fromSeeder.describe()).toEqual({ code: 0, signal: null })
    const i1 = await fromSeeder.wait('info', 1000)
    checkInfo(i1)
    expect(i1.trackers).toEqual([announce])
    expect((i1.peers as string[]).length).toBeGreaterThan(0)
    for (const p of i1.peers as string[]) expect(p).toContain(`/p2p/${String(seeding.peerId)}`)
    // and in text
    const fromSeederText = await run('info-seeder-link-text', ['info', String(seeding.link), '--timeout', '20s', ...peerFlags(dir, 'info2').filter(a => a !== '--json')], dir)
    expect(fromSeederText.exit, fromSeederText.describe()).toEqual({ code: 0, signal: null })
    expect(fromSeederText.stdout.join('\n')).toContain(`name:     ${name}`)
    expect(fromSeederText.stdout.join('\n')).toContain('docs/deep/b.bin')

    // create's link (its tracker only): round-trips to the same manifest
    const fromCreated = await run('info-created-link', ['info', String(created.link), '--timeout', '20s', ...peerFlags(dir, 'info3')], dir)
    expect(fromCreated.exit, fromCreated.describe()).toEqual({ code: 0, signal: null })
    const i3 = await fromCreated.wait('info', 1000)
    checkInfo(i3)
    expect(i3.trackers).toEqual([announce])
  }, 60_000)

  describe('limits', () => {
    it('get --timeout 2s with no seeder for the CID: the timeout event, a message, exit 1, within seconds', async () => {
      const dir = await tempDir()
      const source = join(dir, 'data', 'niemand')
      await writeTree(source, { 'a.bin': 10_000, 'b/c.bin': 20_000 })
      const created = await create(source, dir)
      const announce = await startTracker(dir)
      const started = Date.now()
      const p = await run('get', ['get', String(created.cid), '--tracker', announce, '--out', join(dir, 'out'), '--timeout', '2s', ...peerFlags(dir, 'leecher')], dir, 20_000)
      const took = Date.now() - started
      expect(p.exit, p.describe()).toEqual({ code: 1, signal: null })
      const t = p.last('timeout')
      expect(t, p.describe()).toBeDefined()
      expect(t?.cid).toBe(created.cid)
      expect(p.stderr.join('\n')).toMatch(/^bitswarm: no piece arrived for .*giving up/m)
      expect(took).toBeGreaterThanOrEqual(2000)
      expect(took).toBeLessThan(10_000)
      expect(existsSync(join(dir, 'out', 'niemand'))).toBe(false)
    })

    it('get --seed --seed-ratio 0 and --seed-time 1s: complete, then seeded, exit 0', async () => {
      const dir = await tempDir()
      const source = join(dir, 'data', 'teilen')
      await writeTree(source, { 'a.bin': 300_000, 'b/c.bin': 200_000, 'empty.txt': 0 })
      const announce = await startTracker(dir)
      const { seeding } = await startSeeder(source, announce, dir)
      const cid = String(seeding.cid)
      const byRatio = new CliProc('ratio', ['get', cid, '--tracker', announce, '--out', join(dir, 'out1'), '--seed', '--seed-ratio', '0', ...peerFlags(dir, 'l1')], { cwd: dir })
      const byTime = new CliProc('time', ['get', cid, '--tracker', announce, '--out', join(dir, 'out2'), '--seed', '--seed-time', '1s', ...peerFlags(dir, 'l2')], { cwd: dir })
      for (const [p, reason] of [[byRatio, 'ratio'], [byTime, 'time']] as const) {
        const seeded = await p.wait('seeded', 30_000)
        expect(await p.waitExit(15_000), p.describe()).toEqual({ code: 0, signal: null })
        expect(seeded.reason).toBe(reason)
        expect(seeded.cid).toBe(cid)
        const complete = p.events.findIndex(e => e.event === 'complete')
        expect(complete, p.describe()).toBeGreaterThanOrEqual(0)
        expect(complete).toBeLessThan(p.events.indexOf(seeded))
        if (reason === 'time') expect(Number(seeded.seconds)).toBeGreaterThanOrEqual(1)
        await expectIdentical(source, String(p.events[complete].path))
      }
    })

    it('--max-download-rate 1MiB: a 3 MiB file takes at least ~2 s', async () => {
      const dir = await tempDir()
      const file = join(dir, 'drei.bin')
      const want = await writeRandomFile(file, 3 * MiB)
      const announce = await startTracker(dir)
      const { seeding } = await startSeeder(file, announce, dir)
      const p = new CliProc('capped', ['get', String(seeding.cid), '--tracker', announce, '--out', join(dir, 'out'), '--max-download-rate', '1MiB', ...peerFlags(dir, 'leecher')], { cwd: dir })
      await p.wait('started', 15_000)
      const started = Date.now()
      const c = await p.wait('complete', 30_000)
      const took = Date.now() - started
      expect(await p.waitExit(15_000), p.describe()).toEqual({ code: 0, signal: null })
      expect(await sha256File(String(c.path))).toBe(want)
      expect(took).toBeGreaterThanOrEqual(1900)
    })
  })
})
