/**
 * A peer in another process as a source of the live page: its own page's `/snapshot.json`,
 * polled. The demo runs its peers as separate processes, each with `--ui 127.0.0.1:0`, and shows
 * them side by side on one page through these.
 */
import type { UiSnapshot, UiSource } from './snapshot.js'

/** A poll that takes longer is given up (the next one tries again). */
const POLL_TIMEOUT_MS = 2_000

export class RemoteSource implements UiSource {
  private latest: UiSnapshot | undefined
  private url: string | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  private polling = false
  private stopped = false

  /**
   * @param name     the column's label (replaces the remote one)
   * @param pageUrl  the remote page (`http://127.0.0.1:port/`), or a promise of it (the process may not have printed it yet)
   * @param interval ms between polls
   */
  constructor (readonly name: string, pageUrl: string | Promise<string>, interval = 1000) {
    void Promise.resolve(pageUrl).then((url) => {
      if (this.stopped) return
      this.url = new URL('snapshot.json', url).toString()
      void this.poll()
      this.timer = setInterval(() => { void this.poll() }, interval)
      this.timer.unref()
    }, () => {})
  }

  snapshot (): UiSnapshot | undefined {
    return this.latest
  }

  stop (): void {
    this.stopped = true
    if (this.timer != null) clearInterval(this.timer)
  }

  private async poll (): Promise<void> {
    if (this.polling || this.url == null) return
    this.polling = true
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(POLL_TIMEOUT_MS) })
      if (!res.ok) return
      const body = await res.json() as { sources?: unknown }
      const first = Array.isArray(body.sources) ? body.sources[0] as unknown : undefined
      if (first == null || typeof first !== 'object') return
      this.latest = { ...(first as UiSnapshot), name: this.name }
    } catch {
      // the process is starting or gone: the column keeps its last snapshot
    } finally {
      this.polling = false
    }
  }
}
