/**
 * Replacing a small file atomically: write a uniquely named temp file beside it, then rename it
 * over the target, so readers see the old content or the new, never half of it. A failed write
 * leaves no temp file behind.
 */
import { randomBytes } from 'node:crypto'
import { open, rename, unlink } from 'node:fs/promises'

export interface AtomicWriteOptions {
  /** file mode of a new file (default 0o666, less the umask) */
  mode?: number
  /** fsync before the rename, so a crash cannot leave a renamed but empty file (default false) */
  sync?: boolean
}

export async function writeFileAtomic (path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  // pid + random: unique across processes and across writers within one process
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const handle = await open(tmp, 'wx', options.mode)
    try {
      await handle.writeFile(data)
      if (options.sync === true) await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}
