// `--dht <mode>` / `--no-dht`, and the address classifier the environment asks for (tests only),
// shared by `seed`, `get` and `info`.
import { addressClassFromEnv, PUBLIC_RANGES_ENV, type AddressClassifier } from '../net/address-class.js'
import { DHT_MODES, type DhtMode } from '../node.js'
import { UsageError } from './errors.js'

/** `--dht auto|lan|wan|off` (default auto); `--no-dht` is `--dht off`. */
export function dhtOption (value: string | undefined, noDht: boolean | undefined): DhtMode {
  if (value != null && !(DHT_MODES as readonly string[]).includes(value)) throw new UsageError(`--dht must be one of ${DHT_MODES.join(', ')}, got ${value}`)
  if (noDht === true) {
    if (value != null && value !== 'off') throw new UsageError(`--no-dht and --dht ${value} contradict each other (--no-dht is --dht off)`)
    return 'off'
  }
  return (value as DhtMode | undefined) ?? 'auto'
}

/**
 * For tests only: `BITSWARM_PUBLIC_RANGES=10.200.0.0/16` (comma- or space-separated CIDRs) makes
 * the peer count those addresses as public, so that processes in network namespaces can play
 * the internet with private addresses (the WAN DHT keeps them and serves from them). Unset: the
 * default classification (src/net/address-class.ts).
 */
export function addressClassOption (env: NodeJS.ProcessEnv = process.env): AddressClassifier | undefined {
  try {
    return addressClassFromEnv(env)
  } catch (err) {
    throw new UsageError(`${PUBLIC_RANGES_ENV}: ${(err as Error).message}`)
  }
}
