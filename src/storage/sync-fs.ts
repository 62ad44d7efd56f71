/**
 * One durability barrier for many files at once: syncfs(2) of the file system that holds a path.
 *
 * A finished folder of 10,000 small files must have every file's bytes on disk before any of
 * them gets its final name (a crash must never leave a complete-looking file of zeros). One
 * fdatasync per file costs a disk flush each: about a second for 10,000 files of 4 KiB on an
 * SSD, most of a folder download's finalize. syncfs flushes them all in one pass (~0.1 s).
 *
 * Node has no syncfs binding, so it runs coreutils' `sync -f PATH` (Linux, coreutils ≥ 8.24).
 * Where that is missing or fails (another OS, busybox, an old coreutils, an I/O error) the caller
 * falls back to one fdatasync per file, which also reports a real I/O error on the file it hit;
 * after one failure this process stops trying. syncfs also flushes other programs' dirty data on
 * that file system, so it can take longer on a busy disk; it is never less safe.
 */
import { execFile } from 'node:child_process'

/** how long one `sync -f` may take before we give up on it (and fall back to fdatasync per file) */
const SYNC_TIMEOUT_MS = 120_000

let usable: boolean = process.platform === 'linux'

/** Can syncFileSystem() work here, as far as we know? */
export function fileSystemSyncUsable (): boolean {
  return usable
}

/**
 * Flushes the file system holding `path` to disk (syncfs(2), through `sync -f`). True when it
 * did; false when it could not (the caller must then fsync each file itself).
 */
export async function syncFileSystem (path: string, signal?: AbortSignal): Promise<boolean> {
  if (!usable) return false
  const ok = await new Promise<boolean>(resolve => {
    execFile('sync', ['-f', '--', path], { timeout: SYNC_TIMEOUT_MS, signal, windowsHide: true }, (err) => { resolve(err == null) })
  })
  if (!ok && signal?.aborted !== true) usable = false
  return ok
}

