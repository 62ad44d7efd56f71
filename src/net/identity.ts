/**
 * A peer's identity kept in a file, so that its peer id (and with it bootstrap addresses and
 * share links that name it) stays the same from one run to the next (`--identity FILE`).
 *
 * The file holds the key in libp2p's own encoding, the `PrivateKey` protobuf
 * (`privateKeyToProtobuf`), as raw bytes: that is what `privateKeyFromProtobuf` reads back with
 * no text layer to get wrong (a trailing newline, base64 flavours), and the same bytes
 * go-libp2p tools keep in their identity files. It is a secret: created 0600, and refused when
 * others may read it, as ssh does with its keys.
 */
import { constants as fs } from 'node:fs'
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

/** A protobuf-encoded key is well under 100 bytes for Ed25519 and about 1.2 KiB for RSA-2048. */
const MAX_IDENTITY_BYTES = 16 * 1024

/** An identity file that cannot be used: not a regular file, readable by others, not a key. */
export class IdentityFileError extends Error {
  readonly path: string
  constructor (path: string, reason: string) {
    super(`identity file ${path} ${reason}`)
    this.name = 'IdentityFileError'
    this.path = path
  }
}

/**
 * The key in the file at `path`; if there is no such file, a new Ed25519 key written there
 * (mode 0600; its folder is made if missing, mode 0700). Never follows a symbolic link at
 * `path`; refuses (IdentityFileError) anything but a regular file that only its owner may read,
 * holding a libp2p private key.
 */
export async function loadOrCreateIdentity (path: string): Promise<PrivateKey> {
  // two runs starting at once with the same new path: one creates, the other loads what it wrote
  for (let attempt = 0; ; attempt++) {
    const loaded = await loadIdentity(path)
    if (loaded != null) return loaded
    const created = await createIdentity(path)
    if (created != null) return created
    if (attempt > 0) throw new IdentityFileError(path, 'keeps appearing and disappearing')
  }
}

/** The key in the file at `path`, or undefined if there is no file there. */
export async function loadIdentity (path: string): Promise<PrivateKey | undefined> {
  let handle: FileHandle
  try {
    // O_NOFOLLOW: a symlink planted at the path is refused (ELOOP), not followed; O_NONBLOCK: a
    // FIFO at the path is opened without waiting for a writer (and then refused below)
    handle = await open(path, fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new IdentityFileError(path, 'is a symbolic link: give the path of the file itself')
    throw new IdentityFileError(path, `cannot be read: ${(err as Error).message}`)
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new IdentityFileError(path, `is not a regular file (${st.isDirectory() ? 'a directory' : 'a special file'})`)
    if ((st.mode & 0o077) !== 0) {
      throw new IdentityFileError(path, `may be read by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): it holds a private key; run chmod 600 ${path}`)
    }
    if (st.size === 0) throw new IdentityFileError(path, 'is empty: delete it to make a new identity, or restore the key')
    if (st.size > MAX_IDENTITY_BYTES) throw new IdentityFileError(path, `is too large (${st.size} bytes) to be a libp2p private key`)
    const buf = Buffer.alloc(st.size)
    const { bytesRead } = await handle.read(buf, 0, st.size, 0)
    return await decodeKey(path, buf.subarray(0, bytesRead))
  } finally {
    await handle.close()
  }
}

/**
 * A new Ed25519 key written to a new file at `path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600);
 * undefined if something is already there (whatever it is: a file, a symlink, a directory).
 */
export async function createIdentity (path: string): Promise<PrivateKey | undefined> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 }).catch((err: Error) => {
    throw new IdentityFileError(path, `cannot be created: ${err.message}`)
  })
  const key = await generateKeyPair('Ed25519')
  let handle: FileHandle
  try {
    handle = await open(path, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw new IdentityFileError(path, `cannot be created: ${(err as Error).message}`)
  }
  try {
    // the umask can only take bits away from 0600; set it exactly all the same
    await handle.chmod(0o600)
    await handle.writeFile(privateKeyToProtobuf(key))
    await handle.sync()
    await handle.close()
  } catch (err) {
    await handle.close().catch(() => {})
    // no half-written key left behind for the next run to refuse
    await unlink(path).catch(() => {})
    throw new IdentityFileError(path, `cannot be written: ${(err as Error).message}`)
  }
  return key
}

async function decodeKey (path: string, bytes: Uint8Array): Promise<PrivateKey> {
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch {
    throw new IdentityFileError(path, 'does not hold a libp2p private key (libp2p protobuf encoding, raw bytes)')
  }
  // the Ed25519 encoding carries the public key beside the private one and nothing checks they
  // belong together: a damaged public half would give a peer id whose handshakes all fail
  const probe = new TextEncoder().encode('bitswarm identity check')
  let ok = false
  try {
    ok = await key.publicKey.verify(probe, await key.sign(probe))
  } catch {}
  if (!ok) throw new IdentityFileError(path, 'holds a damaged key (its public half does not match its private half)')
  return key
}
