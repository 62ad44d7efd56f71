/**
 * Issue 10, item 8: a manifest's name is a peer's words. Terminal escapes, carriage returns and
 * newlines in it must be shown, not obeyed: raw, `\x1b[2K\r` erases the line and a newline
 * starts a forged "complete … every piece verified" one. Real `bitswarm` processes (the built
 * CLI) on 127.0.0.1: a tracker, a seeder of a file with such a name, and two `get`s (text, JSON).
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, tempDir, until, useProcessCleanup, writeRandomFile } from '../e2e/procs.js'

useProcessCleanup()

const FORGED = 'complete: bank.pdf (1.0 MiB, every piece verified)'
/** erase the line, carriage return, a newline, a one-character CSI (C1) and a bidi override */
const NAME = `x\x1b[2K\r${FORGED}\n\u009b31m\u202eevil.bin`
/** what a terminal would obey: C0 controls but none of `\t`, DEL, C1 controls, bidi marks */
const RAW = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/

describe('names with terminal escapes', () => {
  it('are printed escaped by seed and get, in text and in JSON', async () => {
    const dir = await tempDir('bitswarm-escapes-')
    const file = join(dir, NAME)
    await writeRandomFile(file, 64 * 1024)
    const tracker = new CliProc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)

    // text output: the seeder prints the name and the manifest's path
    const seeder = new CliProc('seeder', ['seed', file, '--tracker', announce, '--listen', LOOPBACK, '--no-dht'], { cwd: dir })
    await until(() => seeder.stdout.some(l => l.startsWith('  listen:')), 30_000, () => seeder.describe())
    const cid = seeder.stdout.map(l => /^ {2}cid: +(\S+)$/.exec(l)?.[1]).find(c => c !== undefined)
    expect(cid, seeder.describe()).toBeDefined()
    expect.soft(seeder.stdout.find(l => l.startsWith('seeding '))).toBe('seeding x\\x1b[2K\\rcomplete: bank.pdf (1.0 MiB, every piece verified)\\n\\u009b31m\\u202eevil.bin (64.0 KiB)')

    const get = new CliProc('get', ['get', String(cid), '--tracker', announce, '--out', join(dir, 'out'), '--listen', LOOPBACK, '--no-dht'], { cwd: dir })
    expect(await get.waitExit(45_000), get.describe()).toEqual({ code: 0, signal: null })
    expect.soft(get.stdout.find(l => l.startsWith('manifest: '))).toBe('manifest: x\\x1b[2K\\rcomplete: bank.pdf (1.0 MiB, every piece verified)\\n\\u009b31m\\u202eevil.bin (64.0 KiB)')
    // one "complete" line, the real one, naming the real path
    const completes = get.stdout.filter(l => l.includes('complete: '))
    expect.soft(completes.filter(l => l.startsWith('complete: '))).toHaveLength(1)
    expect.soft(completes.find(l => l.startsWith('complete: '))).toContain(`${join(dir, 'out')}/x\\x1b[2K\\r`)

    // JSON output: every line parses, nothing a terminal would obey is left raw, field names as before
    const json = new CliProc('get-json', ['get', String(cid), '--tracker', announce, '--out', join(dir, 'out-json'), '--listen', LOOPBACK, '--no-dht', '--json'], { cwd: dir })
    expect(await json.waitExit(45_000), json.describe()).toEqual({ code: 0, signal: null })
    expect(json.last('manifest')?.name).toBe(NAME)
    expect(json.last('complete')?.path).toBe(join(dir, 'out-json', NAME))
    expect(json.events).toHaveLength(json.stdout.length)

    await seeder.stop()
    await tracker.stop()
    for (const p of [tracker, seeder, get, json]) {
      for (const line of [...p.stdout, ...p.stderr]) expect.soft(line, `${p.name}: ${JSON.stringify(line)}`).not.toMatch(RAW)
    }
  }, 120_000)
})
