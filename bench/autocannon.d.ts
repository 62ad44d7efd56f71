// Minimal types for the parts of autocannon (no @types package) that bench/tracker-load.ts uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    interface Request {
      method?: string
      path?: string
      headers?: Record<string, string>
      body?: string | Buffer
      /** return the request to send, or a falsy value to restart from the first request */
      setupRequest?: (request: Request, context: Record<string, unknown>) => Request | undefined
      onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void
    }
    interface Options {
      url: string
      connections?: number
      /** seconds */
      duration?: number
      /** requests in total; takes precedence over duration */
      amount?: number
      /** requests per second from all connections */
      overallRate?: number
      pipelining?: number
      /** seconds */
      timeout?: number
      requests?: Request[]
    }
    interface Histogram {
      average: number
      mean: number
      stddev: number
      min: number
      max: number
      total: number
      p50: number
      p90: number
      p99: number
      p99_9: number
    }
    interface Result {
      requests: Histogram
      /** ms */
      latency: Histogram
      throughput: Histogram
      /** seconds */
      duration: number
      errors: number
      timeouts: number
      non2xx: number
      '2xx': number
      statusCodeStats?: Record<string, { count: number }>
    }
    interface Instance extends EventEmitter, PromiseLike<Result> {
      stop: () => void
    }
  }

  function autocannon (options: autocannon.Options): autocannon.Instance
  export = autocannon
}
