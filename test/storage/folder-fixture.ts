/**
 * Folders for the folder-store tests: a layout and piece hashes made here (without a folder
 * manifest, so the store is tested on its own), files written to and read from disk, and a
 * snapshot of a tree to show that nothing in it changed.
 */
import { createHash } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { layoutOf, type Layout } from '../../src/manifest/layout.js'
import type { FolderSpec } from '../../src/storage/folder-store.js'

export interface FolderFile { path: string[], data: Uint8Array }

export interface FolderFixture {
  spec: FolderSpec
  layout: Layout
  files: FolderFile[]
  emptyFolders: string[][]
  /** the bytes of `piece` */
  pieceOf: (piece: number) => Uint8Array
}

const digest = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())

export function folderFixture (files: FolderFile[], pieceLength: number, emptyFolders: string[][] = [], name = 'folder'): FolderFixture {
  const layout = layoutOf(pieceLength, files.map(f => ({ path: f.path, length: f.data.length })))
  const pieceOf = (p: number): Uint8Array => {
    const span = layout.fileOf(p)
    const at = layout.offsetInFile(p)
    return files[span.index].data.subarray(at, at + layout.pieceSize(p))
  }
  const hashes = Array.from({ length: layout.pieceCount }, (_, p) => digest(pieceOf(p)))
  return { spec: { name, layout, pieceHash: (p) => hashes[p], emptyFolders }, layout, files, emptyFolders, pieceOf }
}

/**
 * The files a single-file test manifest of `length` bytes becomes as a folder: whole pieces cut
 * into files of 2, 1 and 3 pieces (the short last piece ends the last file), in nested folders,
 * with empty files among them. Every file starts on a piece boundary, so the pieces and their
 * hashes are exactly the single file's: the conformance suite runs unchanged over a folder.
 */
export function splitIntoFiles (length: number, pieceLength: number): Array<{ path: string[], length: number }> {
  const n = Math.ceil(length / pieceLength)
  const files: Array<{ path: string[], length: number }> = [{ path: ['0-empty'], length: 0 }]
  const cuts = [2, 1, 3]
  let piece = 0
  for (let k = 0; piece < n; k++) {
    const take = Math.min(cuts[k % cuts.length], n - piece)
    const bytes = Math.min(take * pieceLength, length - piece * pieceLength)
    files.push({ path: k % 2 === 0 ? ['a', `f${k}.bin`] : ['a', 'b', `f${k}.bin`], length: bytes })
    if (k === 0) files.push({ path: ['a', 'b', 'empty'], length: 0 })
    piece += take
  }
  return files
}

/** Writes the fixture's files and empty folders under `dir`. */
export async function writeFolder (dir: string, fx: { files: FolderFile[], emptyFolders?: string[][] }): Promise<void> {
  for (const f of fx.files) {
    await mkdir(join(dir, ...f.path.slice(0, -1)), { recursive: true })
    await writeFile(join(dir, ...f.path), f.data)
  }
  for (const folder of fx.emptyFolders ?? []) await mkdir(join(dir, ...folder), { recursive: true })
}

/**
 * Everything under `dir`, as sorted lines: each file with its bytes' hash, each folder, each
 * link with its target. Equal snapshots: nothing was added, removed or changed.
 */
export async function snapshot (dir: string): Promise<string[]> {
  const lines: string[] = []
  const walk = async (at: string, rel: string): Promise<void> => {
    for (const name of (await readdir(at)).sort()) {
      const path = join(at, name)
      const r = rel === '' ? name : `${rel}/${name}`
      const st = await lstat(path)
      if (st.isSymbolicLink()) lines.push(`link ${r} -> ${await readlink(path)}`)
      else if (st.isDirectory()) { lines.push(`dir ${r}`); await walk(path, r) } else lines.push(`file ${r} ${createHash('sha256').update(await readFile(path)).digest('hex')}`)
    }
  }
  await walk(dir, '')
  return lines
}
