/**
 * bitswarm as a library: `import { seed, get, createTracker } from 'bitswarm'`. Only the public
 * surface is exported here; everything else is internal and may change.
 *
 * Importing this module patches no global. On Node 20, call `installPolyfills()` (or import
 * `bitswarm/polyfill` first) before starting a peer or creating a libp2p node: libp2p v3 calls
 * `Promise.withResolvers`, which Node 20 lacks. Without it, `seed` and `get` throw
 * `MissingPolyfillError`.
 */

// the functions
export { seed, get, createTracker } from './api.js'
export type { GetOptions, GetResult, PeerEvent, ProgressOptions, SeedFileOptions, TrackerOptions } from './api.js'
export { installPolyfills, missingPolyfills } from './polyfills.js'

// the peer they make (for listeners, stats, or start/stop by hand)
export { Peer } from './peer.js'
export type { Phase, PeerEvents, PeerOptions, PeerProgress, SeedOptions } from './peer.js'
export type { PeerInfo, PeerSource, PieceMap, SwarmStats } from './swarm/swarm.js'
export type { Bitfield } from './bitfield.js'
export type { ChokerInit } from './choker/choker.js'

// a libp2p node of the program's own (the `libp2p` option)
export { libp2pDefaults, DHT_PROTOCOL, WAN_DHT_PROTOCOL, wanDhtModeOf } from './node.js'
export type { BitswarmServices, DhtMode, NodeInit as Libp2pDefaultsInit } from './node.js'
export { defaultAddressClass, isPrivateAddress, isPublicAddress, withPublicRanges, type AddressClass, type AddressClassifier } from './net/address-class.js'
export type { WanDhtMode } from './net/dht-mode.js'
// beyond one LAN: a stable identity, relays (net/relay.ts)
export { loadOrCreateIdentity, IdentityFileError } from './net/identity.js'
export { startRelay, carriesData, DEFAULT_RELAY_LIMITS, type RelayLimits, type RelayNodeInit } from './net/relay.js'
export type { Reachability } from './net/reachability.js'
export type { PeerVia } from './swarm/sessions.js'
export type { PendingInboundInit } from './net/pending-inbound.js'

// manifests
export { createManifest, readManifestFile, writeManifestFile } from './storage/manifest-file.js'
export { InvalidManifestError, manifestLayout, type FileManifest, type FolderFile, type FolderManifest, type Manifest } from './manifest/manifest.js'
export type { FileSpan, Layout } from './manifest/layout.js'
export { formatLink, parseLink, InvalidLinkError, type ShareLink } from './link/link.js'
export { EmptySelectionError, InvalidGlobError } from './manifest/select.js'
export { ManifestNotFoundError } from './errors.js'

// the tracker
export { TrackerServer, TrackerServerError, type TrackerServerInit } from '../tracker/server.js'

// typed errors
export { Libp2pNodeError, MissingPolyfillError, NoSwarmSourcesError, OutputDirError, UsageError } from './errors.js'
