/**
 * The PieceStore conformance suite (./conformance.ts) against every backend: the file store on
 * real files in a temp dir, and the in-memory store.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { MemoryPieceStore, openMemoryDownloadStore, openMemorySeedStore } from '../../src/storage/memory-store.js'
import { openDownloadStore, openSeedStore, type DownloadStore } from '../../src/storage/storage.js'
import { describeStoreConformance } from './conformance.js'

let root: string
/** one dir per store, removed after each case */
const dirs: string[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'bitswarm-conformance-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

describeStoreConformance<DownloadStore>('file store', {
  async openDownload (manifest) {
    const dir = await mkdtemp(join(root, 'download-'))
    dirs.push(dir)
    return await openDownloadStore(dir, manifest, 'conformancekey')
  },
  async openSeed (manifest, data) {
    const dir = await mkdtemp(join(root, 'seed-'))
    dirs.push(dir)
    const file = join(dir, manifest.name)
    await writeFile(file, data)
    return await openSeedStore(file, manifest)
  },
  // the finished file is at its final name on disk
  finished: async (store) => new Uint8Array(await readFile(store.path)),
  async cleanup () {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
  }
})

describeStoreConformance<MemoryPieceStore>('memory store', {
  openDownload: async (manifest) => openMemoryDownloadStore(manifest),
  openSeed: async (manifest, data) => openMemorySeedStore(manifest, data),
  finished: async (store) => store.toBytes()
})
