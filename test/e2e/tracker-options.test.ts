// `bitswarm tracker` with operator options, as a real process: the intervals and limits reach the
// server, --allow-file is enforced and reread on SIGHUP, and a bad CID in it is a usage error.
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { announceQuery, getJson, makeCid, makePeer, recordParam } from '../tracker/helpers.js'
import type { TestPeer } from '../tracker/helpers.js'
import { CLI, CliProc, tempDir, until, useProcessCleanup } from './procs.js'

useProcessCleanup()

async function announce (announceUrl: string, peer: TestPeer, manifest: string): Promise<Awaited<ReturnType<typeof getJson>>> {
  const record = await recordParam(peer.key, ['/ip4/127.0.0.1/tcp/4001'])
  return await getJson(`${announceUrl}?${announceQuery({ manifest, peer: peer.id, record, uploaded: 0, downloaded: 0, left: 10 })}`)
}

describe('bitswarm tracker options', () => {
  it('--interval, --min-interval, --max-peers-per-swarm, --allow and --allow-file (reloaded on SIGHUP)', async () => {
    const dir = await tempDir()
    const [a, b, c] = await Promise.all([makeCid('a'), makeCid('b'), makeCid('c')])
    const [p1, p2] = await Promise.all([makePeer(), makePeer()])
    const file = join(dir, 'allow.txt')
    await writeFile(file, `# served here\n${a}\n`)
    const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--interval', '7', '--min-interval', '2',
      '--max-peers-per-swarm', '1', '--allow', c, '--allow-file', file, '--json'], { cwd: dir })
    const url = String((await tracker.wait('listening', 15_000)).announce)

    const first = await announce(url, p1, a)
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ interval: 7, minInterval: 2 })
    // one peer per swarm: the second (same host, so nobody yields) is refused
    const second = await announce(url, p2, a)
    expect(second.status).toBe(503)
    expect(second.body.error).toMatch(/swarm is full \(max 1 peers\)/)
    expect((await announce(url, p1, c)).status).toBe(200)
    expect(await announce(url, p1, b)).toMatchObject({ status: 403, body: { error: 'manifest not tracked here' } })

    // the operator edits the file and sends SIGHUP: b is served, a no longer, c (from --allow) still
    await writeFile(file, `${b}\nnot-a-cid\n`)
    tracker.child.kill('SIGHUP')
    await until(() => tracker.stderr.some(l => l.includes('allow list reloaded')), 10_000, () => tracker.describe())
    expect(tracker.stderr.some(l => l.includes('line 2') && l.includes('skipped'))).toBe(true)
    expect((await announce(url, p2, b)).status).toBe(200)
    expect((await announce(url, p2, a)).status).toBe(403)
    expect((await announce(url, p2, c)).status).toBe(503) // allowed, but p1 holds its one place
    expect(tracker.running).toBe(true)
  }, 60_000)

  it('a bad CID in --allow-file, or a bad limit, is a usage error at start (exit 2, one line)', async () => {
    const dir = await tempDir()
    const file = join(dir, 'allow.txt')
    await writeFile(file, `${await makeCid('a')}\n\nbafy-nonsense\n`)
    const run = (...args: string[]): { status: number | null, stderr: string } => {
      const r = spawnSync(process.execPath, [CLI, 'tracker', '--port', '0', ...args], { encoding: 'utf8', timeout: 15_000 })
      return { status: r.status, stderr: r.stderr }
    }
    const bad = run('--allow-file', file)
    expect(bad.status).toBe(2)
    expect(bad.stderr).toBe(`bitswarm: --allow-file ${file} line 3: "bafy-nonsense" is not a CIDv1\n`)
    expect(run('--allow', 'x').stderr).toMatch(/--allow "x" is not a CIDv1/)
    for (const args of [['--interval', '0'], ['--min-interval', '-1'], ['--max-peers-per-swarm', '1.5'], ['--max-swarms', 'many'], ['--max-peers', '0'], ['--interval', '10', '--min-interval', '20']]) {
      const r = run(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
    }
  }, 60_000)
})
