// `bitswarm demo --ui`: one page for every peer of the demo, side by side. The demo's peers are
// separate processes, each with its own page; the demo's page polls theirs (RemoteSource).
import { describe, expect, it } from 'vitest'
import { CliProc, until, useProcessCleanup } from '../e2e/procs.js'
import type { UiSnapshot } from '../../src/ui/snapshot.js'

useProcessCleanup()

describe('demo --ui', () => {
  it('shows the seeder and every leecher on one page, and stays up until SIGINT', async () => {
    const demo = new CliProc('demo', ['demo', '--size', '2', '--leechers', '2', '--ui'])
    const line = await demo.waitLine(l => l.includes('page:'), 30_000)
    const url = /page:\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)?.[1]
    expect(url, line).toBeDefined()
    let names: string[] = []
    let snap: { sources: UiSnapshot[] } | undefined
    await until(async () => {
      snap = await (await fetch(new URL('snapshot.json', url))).json() as { sources: UiSnapshot[] }
      names = snap.sources.filter(s => s.stats != null && s.map != null).map(s => s.name)
      return names.length === 3
    }, 30_000, () => `the demo's page never showed all three peers: ${JSON.stringify(snap)}`, 200)
    expect(names).toEqual(['seeder', 'leecher1', 'leecher2'])
    // the page itself is served with its policy
    const page = await fetch(url as string)
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    // the demo ends with its summary and then waits for Ctrl-C
    await demo.waitLine(l => l.startsWith('the page stays up at'), 60_000)
    expect(demo.stdout.join('\n')).toContain('every copy is byte-identical to the original')
    expect(await demo.stop('SIGINT', 15_000)).toEqual({ code: 0, signal: null })
  }, 90_000)
})
