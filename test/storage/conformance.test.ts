/**
 * The PieceStore conformance suite (./conformance.ts) against every backend: the file store on
 * real files in a temp dir, the folder stores (the suite's single file cut into several files at
 * piece boundaries, so its pieces and hashes stay the same), and the in-memory store.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { layoutOf } from '../../src/manifest/layout.js'
import { pieceHash, type Manifest } from '../../src/manifest/manifest.js'
import { openFolderDownloadStore, openFolderSeedStore, type FolderSpec, type FolderStore } from '../../src/storage/folder-store.js'
import { MemoryPieceStore, openMemoryDownloadStore, openMemorySeedStore } from '../../src/storage/memory-store.js'
import { openDownloadStore, openSeedStore, type DownloadStore } from '../../src/storage/storage.js'
import { describeStoreConformance } from './conformance.js'
import { splitIntoFiles } from './folder-fixture.js'

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

/** The suite's single-file manifest as a folder of several files (see splitIntoFiles). */
function folderSpecOf (manifest: Manifest): FolderSpec {
  const layout = layoutOf(manifest.pieceLength, splitIntoFiles(manifest.length, manifest.pieceLength))
  return { name: 'folder', layout, pieceHash: (p) => pieceHash(manifest, p) }
}

/** The finished folder's files, one after another: the suite's single file again. */
async function folderBytes (store: FolderStore): Promise<Uint8Array> {
  const parts = await Promise.all(store.layout.files.map(async (f) => await readFile(join(store.path, ...f.path))))
  return new Uint8Array(Buffer.concat(parts))
}

// files of 1 to 3 pieces: small ones download into the pack, larger ones (64 KiB pieces) into part
// files, small files' calls made inline; the same with every call on the thread pool; and every
// file in a part file of its own, with one open file at a time
const FOLDER_VARIANTS = [
  { title: 'files of 1 to 3 pieces', maxOpenFiles: 64 },
  { title: 'files of 1 to 3 pieces, calls on the thread pool', maxOpenFiles: 64, inlineCalls: false },
  { title: 'part files only, one open file at a time', maxOpenFiles: 1, packFilesUpTo: 0, inlineCalls: false }
]
for (const { title, maxOpenFiles, packFilesUpTo, inlineCalls } of FOLDER_VARIANTS) {
  describeStoreConformance<FolderStore>(`folder store (${title})`, {
    async openDownload (manifest) {
      const dir = await mkdtemp(join(root, 'folder-download-'))
      dirs.push(dir)
      return await openFolderDownloadStore(dir, folderSpecOf(manifest), 'conformancekey', { maxOpenFiles, packFilesUpTo, inlineCalls })
    },
    async openSeed (manifest, data) {
      const dir = await mkdtemp(join(root, 'folder-seed-'))
      dirs.push(dir)
      const spec = folderSpecOf(manifest)
      let at = 0
      for (const f of spec.layout.files) {
        await mkdir(join(dir, ...f.path.slice(0, -1)), { recursive: true })
        await writeFile(join(dir, ...f.path), data.subarray(at, at + f.length))
        at += f.length
      }
      return await openFolderSeedStore(dir, spec, { maxOpenFiles, inlineCalls })
    },
    finished: folderBytes,
    async cleanup () {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
    }
  })
}

describeStoreConformance<MemoryPieceStore>('memory store', {
  openDownload: async (manifest) => openMemoryDownloadStore(manifest),
  openSeed: async (manifest, data) => openMemorySeedStore(manifest, data),
  finished: async (store) => store.toBytes()
})
