// Disk trouble: a disk that fills up mid-download (a small tmpfs, which needs root) gives a
// clear error and a non-zero exit, claims nothing complete, and a later run with room resumes.
import { execFileSync } from 'node:child_process'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, sha256File, tempDir, useProcessCleanup, writeRandomFile } from '../e2e/procs.js'

useProcessCleanup()
const MiB = 1024 * 1024

function tryMount (dir: string, size: string): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const mounted: string[] = []
afterEach(() => {
  for (const m of mounted.splice(0)) {
    try { execFileSync('umount', ['-l', m], { stdio: 'ignore' }) } catch {}
  }
})

describe('disk trouble', () => {
  it('a full disk mid-download: clear error, non-zero exit, nothing claimed complete; a later run resumes', async (ctx) => {
    const dir = await tempDir()
    const out = join(dir, 'small-disk')
    await mkdir(out)
    if (!tryMount(out, '2m')) { ctx.skip(); return }
    mounted.push(out)

    const file = join(dir, 'data.bin')
    const want = await writeRandomFile(file, 6 * MiB)
    const tracker = new CliProc('tracker', ['tracker', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--json'], { cwd: dir })
    const cid = String((await seeder.wait('seeding', 30_000)).cid)
    const args = ['get', cid, '--tracker', announce, '--out', out, '--listen', LOOPBACK, '--json']

    const first = new CliProc('first', args, { cwd: dir })
    const exit = await first.waitExit(60_000)
    expect(exit.code).not.toBe(0)
    expect(first.stderr.filter(l => l.startsWith('bitswarm:')).join('\n')).toMatch(/ENOSPC/)
    expect(first.last('complete')).toBeUndefined()
    expect(await readdir(out)).not.toContain('data.bin')

    // room again: the same command picks up what is on disk and finishes
    execFileSync('mount', ['-o', 'remount,size=16m', out])
    const second = new CliProc('second', args, { cwd: dir })
    const done = await second.wait('complete', 60_000)
    expect(await sha256File(String(done.path))).toBe(want)
    expect(second.stderr.join('\n')).toMatch(/resuming: [1-9]\d* of \d+ pieces already here/)
  }, 120_000)
})
