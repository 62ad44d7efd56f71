// The identity file behind `--identity`: made once (0600), the same peer id every load after,
// and anything that is not a private regular file holding a key refused with one clear error.
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IdentityFileError, loadIdentity, loadOrCreateIdentity } from '../../src/net/identity.js'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'bitswarm-identity-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

const idOf = (key: Parameters<typeof peerIdFromPrivateKey>[0]): string => peerIdFromPrivateKey(key).toString()

async function refused (path: string, pattern: RegExp): Promise<void> {
  const err = await loadOrCreateIdentity(path).then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(IdentityFileError)
  expect((err as Error).message).toMatch(pattern)
}

describe('loadOrCreateIdentity', () => {
  it('creates a new Ed25519 key, mode 0600, in a folder it makes; loads the same key after', async () => {
    const path = join(dir, 'nested', 'deeper', 'identity.key')
    const made = await loadOrCreateIdentity(path)
    expect(made.type).toBe('Ed25519')
    const st = await stat(path)
    expect(st.isFile()).toBe(true)
    expect(st.mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'nested'))).mode & 0o777).toBe(0o700)
    // libp2p's own encoding, raw
    expect(idOf(privateKeyFromProtobuf(await readFile(path)))).toBe(idOf(made))

    const again = await loadOrCreateIdentity(path)
    expect(idOf(again)).toBe(idOf(made))
    expect(again.equals(made)).toBe(true)
    expect((await stat(path)).mtimeMs).toBe(st.mtimeMs)
  })

  it('loads a key written by libp2p elsewhere (any key type libp2p encodes)', async () => {
    const path = join(dir, 'secp.key')
    const key = await generateKeyPair('secp256k1')
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600 })
    expect(idOf(await loadOrCreateIdentity(path))).toBe(idOf(key))
  })

  it('refuses a file others may read (0644), saying how to fix it', async () => {
    const path = join(dir, 'identity.key')
    await loadOrCreateIdentity(path)
    await chmod(path, 0o644)
    await refused(path, /may be read by others \(mode 0644\).*chmod 600/)
    await chmod(path, 0o640)
    await refused(path, /mode 0640/)
    await chmod(path, 0o400)
    await expect(loadOrCreateIdentity(path)).resolves.toBeDefined()
  })

  it('refuses an empty file and garbage, and leaves them alone', async () => {
    const empty = join(dir, 'empty.key')
    await writeFile(empty, '', { mode: 0o600 })
    await refused(empty, /is empty/)
    const garbage = join(dir, 'garbage.key')
    await writeFile(garbage, 'not a key at all\n', { mode: 0o600 })
    await refused(garbage, /does not hold a libp2p private key/)
    expect(await readFile(garbage, 'utf8')).toBe('not a key at all\n')
    // the key base64-encoded is not the format either
    const b64 = join(dir, 'b64.key')
    await writeFile(b64, Buffer.from(privateKeyToProtobuf(await generateKeyPair('Ed25519'))).toString('base64'), { mode: 0o600 })
    await refused(b64, /does not hold a libp2p private key/)
  })

  it('refuses a key whose public half does not match its private half', async () => {
    const path = join(dir, 'damaged.key')
    const bytes = privateKeyToProtobuf(await generateKeyPair('Ed25519'))
    bytes[bytes.length - 1] ^= 0xff
    await writeFile(path, bytes, { mode: 0o600 })
    await refused(path, /damaged/)
  })

  it('never follows a symlink at the path: neither to a key nor to where a key would be made', async () => {
    const real = join(dir, 'real.key')
    await loadOrCreateIdentity(real)
    const link = join(dir, 'link.key')
    await symlink(real, link)
    await refused(link, /symbolic link/)
    // a dangling link: creating through it would write wherever it points
    const target = join(dir, 'elsewhere.key')
    const dangling = join(dir, 'dangling.key')
    await symlink(target, dangling)
    await refused(dangling, /symbolic link/)
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses a directory', async () => {
    const path = join(dir, 'a-folder')
    await mkdir(path)
    await refused(path, /not a regular file \(a directory\)/)
  })

  it('loadIdentity: undefined where there is no file, and creates nothing', async () => {
    const path = join(dir, 'none.key')
    expect(await loadIdentity(path)).toBeUndefined()
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
