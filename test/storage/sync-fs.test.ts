/**
 * One syncfs for many files (sync-fs.ts), and a folder download's finalize when it is not there:
 * `sync` missing from PATH, as on a system without coreutils' `sync -f`. These tests share the
 * module's "usable" flag, so they run in this order, in a file of their own.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openFolderDownloadStore } from '../../src/storage/folder-store.js'
import { fileSystemSyncUsable, syncFileSystem } from '../../src/storage/sync-fs.js'
import { testBytes } from './conformance.js'
import { folderFixture } from './folder-fixture.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'bitswarm-syncfs-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const PL = 16384
const fixture = folderFixture([
  { path: ['a', 'one'], data: testBytes(4096, 1) },
  { path: ['a', 'two'], data: testBytes(100, 2) },
  { path: ['b', 'three'], data: testBytes(3 * PL + 7, 3) }
], PL)

async function downloadAll (out: string): Promise<void> {
  const store = await openFolderDownloadStore(out, fixture.spec, 'bafysynctest')
  try {
    for (let p = 0; p < fixture.layout.pieceCount; p++) await store.writePiece(p, fixture.pieceOf(p))
    await store.finalize()
  } finally {
    await store.close()
  }
  for (const f of fixture.files) expect(Buffer.from(await readFile(join(out, 'folder', ...f.path))).equals(Buffer.from(f.data))).toBe(true)
}

describe('syncFileSystem', () => {
  it.runIf(process.platform === 'linux')('flushes the file system of a folder through `sync -f`', async () => {
    expect(fileSystemSyncUsable()).toBe(true)
    expect(await syncFileSystem(dir)).toBe(true)
    await downloadAll(join(dir, 'with'))
  })

  it('without `sync` on PATH: finalize falls back to an fdatasync per file, and the process stops trying', async () => {
    const path = process.env.PATH
    process.env.PATH = join(dir, 'no-such-bin')
    try {
      // on Linux finalize tries `sync -f`, fails, and syncs each copied file instead
      await downloadAll(join(dir, 'without'))
      expect(fileSystemSyncUsable()).toBe(false)
      expect(await syncFileSystem(dir)).toBe(false)
      // and then goes straight to an fdatasync per file
      await downloadAll(join(dir, 'without-again'))
    } finally {
      process.env.PATH = path
    }
    // a failure is remembered for the process: no second child process
    expect(await syncFileSystem(dir)).toBe(false)
  })
})
