/**
 * What the library needs of the runtime that Node 20 lacks, installed only when a program asks:
 * importing the library never patches a global. libp2p v3 (and yamux, ping, it-queue, mortice)
 * calls `Promise.withResolvers`, which Node 22 has and Node 20 does not; without it every dial
 * fails with a bare ECONNRESET.
 */
interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

type PromiseStatics = { withResolvers?: <T>() => Resolvers<T> }

/** The globals the library needs and the runtime lacks (none on Node 22 and later). */
export function missingPolyfills (): string[] {
  return typeof (Promise as unknown as PromiseStatics).withResolvers === 'function' ? [] : ['Promise.withResolvers']
}

/**
 * Adds `Promise.withResolvers` where the runtime lacks it (Node 20); does nothing where it is
 * there. Call it before creating a libp2p node or a peer, or import `bitswarm/polyfill` first.
 */
export function installPolyfills (): void {
  const P = Promise as unknown as PromiseStatics
  if (typeof P.withResolvers === 'function') return
  P.withResolvers = function withResolvers<T> (): Resolvers<T> {
    let resolve!: Resolvers<T>['resolve']
    let reject!: Resolvers<T>['reject']
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
