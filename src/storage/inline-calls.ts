/**
 * File-system calls made inline, on the main thread, while they take microseconds, with libuv's
 * thread pool (POOL) as the fallback: the folder store's calls on small files, and a downloaded
 * piece's write into a single file's part file (storage.ts). Timed, so that a file system where
 * they are slow sends them back to the pool for good.
 */
import * as fsCallbacks from 'node:fs'
import { closeSync, fstatSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync, type Stats } from 'node:fs'
import { link, lstat, rename, unlink } from 'node:fs/promises'
import { promisify } from 'node:util'

/** The file-system calls made either way: on libuv's thread pool (POOL), or inline (InlineCalls). */
export interface FsCalls {
  open: (path: string, flags: number, mode?: number) => Promise<number>
  write: (fd: number, buf: Uint8Array, offset: number, length: number, position: number) => Promise<number>
  fstat: (fd: number) => Promise<Stats>
  close: (fd: number) => Promise<void>
  link: (from: string, to: string) => Promise<void>
  lstat: (path: string) => Promise<Stats>
  unlink: (path: string) => Promise<void>
  rename: (from: string, to: string) => Promise<void>
}

const openOnPool = promisify(fsCallbacks.open)
const writeOnPool = promisify(fsCallbacks.write)
const fstatOnPool = promisify(fsCallbacks.fstat)
const closeOnPool = promisify(fsCallbacks.close)
/** On libuv's thread pool. */
export const POOL: FsCalls = {
  open: async (path, flags, mode) => await openOnPool(path, flags, mode),
  write: async (fd, buf, offset, length, position) => (await writeOnPool(fd, buf, offset, length, position)).bytesWritten,
  fstat: async (fd) => await fstatOnPool(fd),
  close: async (fd) => { await closeOnPool(fd) },
  link,
  lstat,
  unlink,
  rename
}

/** a call that takes longer than this waited for a disk or a network (a cached one takes µs) */
const INLINE_SLOW_MS = 5
/** inline calls stop after this many slow ones, if they are more than 1 in INLINE_SLOW_SHARE */
const INLINE_SLOW_CALLS = 8
const INLINE_SLOW_SHARE = 64
/** inline calls (and what runs between them) hold the event loop this long at most before it gets a turn */
const INLINE_SLICE_MS = 10

/**
 * File-system calls on small files made inline, on the main thread. A call handed to libuv's
 * thread pool costs a round trip (a worker woken, its result queued back): ~100 µs of the main
 * thread on a busy two-core machine, for a call that takes 2 to 25 µs on a small file in the page
 * cache. A folder of 10,000 files of 4 KiB spent most of its time there. So the folder store's
 * calls on small files are made inline: a pack slot's write and read, a small file's open, stat,
 * read and close, and a copy out of the pack (all but its fsync, which waits for the disk and
 * stays on the pool). A single file's piece writes too (256 KiB into the page cache, ~50 µs):
 * on two cores the worker woken for each one took the core from the main thread that woke it.
 * Each call is timed: on a file system where they are not fast (a cold disk, NFS: more than 8
 * calls and 1 in 64 over 5 ms) the store goes back to the thread pool for good, so the main
 * thread is never held for long. And as a call awaited inline resolves without the event loop
 * turning, a loop of reads (verifyStore) would hold it until done: pace() gives it a turn every
 * INLINE_SLICE_MS.
 */
export class InlineCalls implements FsCalls {
  private calls = 0
  private slow = 0
  private off: boolean
  /** when the event loop last had a turn, as far as we know, and whether we are waiting for the next */
  private sliceStart = 0
  private ticking = false

  constructor (on = true) {
    this.off = !on
  }

  /** Are calls still made inline? */
  get on (): boolean {
    return !this.off
  }

  /** Makes the call `fn` now, timed. */
  run<T> (fn: () => T): T {
    const t0 = performance.now()
    try {
      return fn()
    } finally {
      this.calls++
      if (performance.now() - t0 > INLINE_SLOW_MS) {
        this.slow++
        if (this.slow > INLINE_SLOW_CALLS && this.slow * INLINE_SLOW_SHARE > this.calls) this.off = true
      }
    }
  }

  /**
   * Awaited before inline calls: resolves at once, unless the event loop has not had a turn for
   * INLINE_SLICE_MS, then after it had one (I/O callbacks and timers run).
   */
  async pace (): Promise<void> {
    if (!this.ticking) {
      this.ticking = true
      this.sliceStart = performance.now()
      setImmediate(() => { this.ticking = false })
      return
    }
    if (performance.now() - this.sliceStart < INLINE_SLICE_MS) return
    await new Promise<void>(resolve => { setImmediate(resolve) })
  }

  /** These calls, inline if still on, else on the pool. */
  get io (): FsCalls {
    return this.off ? POOL : this
  }

  open = async (path: string, flags: number, mode?: number): Promise<number> => this.run(() => openSync(path, flags, mode))
  write = async (fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> => this.run(() => writeSync(fd, buf, offset, length, position))
  fstat = async (fd: number): Promise<Stats> => this.run(() => fstatSync(fd))
  close = async (fd: number): Promise<void> => { this.run(() => { closeSync(fd) }) }
  link = async (from: string, to: string): Promise<void> => { this.run(() => { linkSync(from, to) }) }
  lstat = async (path: string): Promise<Stats> => this.run(() => lstatSync(path))
  unlink = async (path: string): Promise<void> => { this.run(() => { unlinkSync(path) }) }
  rename = async (from: string, to: string): Promise<void> => { this.run(() => { renameSync(from, to) }) }
}
