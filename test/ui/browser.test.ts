// The live page in a real browser during a real swarm: Debian's Chromium (`apt-get install
// chromium`; .ci/run installs it when missing) driven by playwright-core, which never downloads a
// browser of its own. A tracker, a seeder of a file whose name is an HTML payload, and two
// leechers slowed down to be watched, the first with `--ui 127.0.0.1:0` (the built CLI, as
// users run it). The page must show the name as text, run nothing from it, and move: the piece
// map and the peers table change between two moments. A screenshot is saved
// (BITSWARM_UI_SCREENSHOT, default <tmpdir>/bitswarm-ui.png).
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CliProc, LOOPBACK, tempDir, until, useProcessCleanup, writeRandomFile } from '../e2e/procs.js'

const CHROMIUM = process.env.BITSWARM_CHROMIUM ?? '/usr/bin/chromium'
const HAVE_CHROMIUM = existsSync(CHROMIUM)
if (!HAVE_CHROMIUM) console.warn(`test/ui/browser.test.ts skipped: no Chromium at ${CHROMIUM} (install it: apt-get install -y chromium; or set BITSWARM_CHROMIUM)`)

const SCREENSHOT = process.env.BITSWARM_UI_SCREENSHOT ?? join(tmpdir(), 'bitswarm-ui.png')
/** a file name a careless page would turn into markup and run */
const PAYLOAD = '<img src=x onerror="window.__pwned=1">.bin'
const KiB = 1024

useProcessCleanup()

const WATCH_VIOLATIONS = `
  window.__violations = []
  document.addEventListener('securitypolicyviolation', (e) => { window.__violations.push(e.violatedDirective + ' ' + e.blockedURI) })
`

/** The page's state (PageState), as an expression evaluated in the page. */
const READ_PAGE = `(() => {
  const canvas = document.querySelector('.peer canvas.piece-map')
  const text = (sel) => document.querySelector(sel)?.textContent ?? ''
  return {
    name: text('.peer .manifest-name'),
    status: text('#status'),
    have: Number(canvas?.dataset.have ?? -1),
    cells: Number(canvas?.dataset.cells ?? -1),
    caption: text('.peer .map-caption'),
    rows: document.querySelectorAll('.peer table.peers tbody tr').length,
    table: text('.peer table.peers tbody'),
    pwned: window.__pwned,
    images: document.querySelectorAll('img').length,
    violations: window.__violations
  }
})()`

/** What the test reads off the page. */
interface PageState {
  name: string
  status: string
  have: number
  cells: number
  caption: string
  rows: number
  table: string
  pwned: unknown
  images: number
  violations: string[]
}

describe.skipIf(!HAVE_CHROMIUM)('the live page in Chromium', () => {
  it('shows a real swarm live: the piece map and the peers table move, a hostile name is text', async () => {
    const { chromium } = await import('playwright-core')
    const dir = await tempDir('bitswarm-ui-')
    await writeRandomFile(join(dir, PAYLOAD), 3 * 1024 * KiB)

    const tracker = new CliProc('tracker', ['tracker', '--host', '127.0.0.1', '--port', '0', '--json'], { cwd: dir })
    const announce = String((await tracker.wait('listening', 15_000)).announce)
    const seeder = new CliProc('seeder', ['seed', PAYLOAD, '--tracker', announce, '--listen', LOOPBACK, '--no-dht', '--json'], { cwd: dir })
    const cid = String((await seeder.wait('seeding', 30_000)).cid)
    // slowed down (3 MiB at 384 KiB/s: some 8 s) so that two moments differ
    const slow = ['--max-download-rate', '384KiB', '--stats-interval', '0.5', '--no-dht', '--json']
    const watched = new CliProc('leecher1', ['get', cid, '--tracker', announce, '--out', join(dir, 'out1'), '--listen', LOOPBACK, '--ui', '127.0.0.1:0', ...slow], { cwd: dir })
    new CliProc('leecher2', ['get', cid, '--tracker', announce, '--out', join(dir, 'out2'), '--listen', LOOPBACK, ...slow], { cwd: dir })
    const url = String((await watched.wait('ui', 30_000)).url)
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } })
      const errors: string[] = []
      page.on('pageerror', (err) => { errors.push(err.message) })
      // a Content-Security-Policy violation would mean something tried to run or load what it may not
      // (the page's code as strings: this project's TypeScript has no DOM types)
      await page.addInitScript({ content: WATCH_VIOLATIONS })
      const response = await page.goto(url)
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'")

      const read = async (): Promise<PageState> => await page.evaluate(READ_PAGE) as PageState

      // the first moment: the manifest is known, some pieces are here, both other peers are listed
      let first: PageState | undefined
      await until(async () => {
        first = await read()
        return first.name === PAYLOAD && first.have > 0 && first.have < first.cells && first.rows >= 2
      }, 20_000, () => `the page never showed the download under way: ${JSON.stringify(first)}\n${watched.describe()}`, 200)
      if (first == null) throw new Error('unreachable')
      // the second: more pieces, and a table that changed (the other leecher's share, the rates)
      let second: PageState | undefined
      await until(async () => {
        second = await read()
        return second.have > (first?.have ?? 0) && second.table !== first?.table
      }, 10_000, () => `the page did not move: ${JSON.stringify(first)} then ${JSON.stringify(second)}`, 200)
      if (second == null) throw new Error('unreachable')

      expect(second.status).toBe('live')
      expect(second.caption).toMatch(/^\d+ pieces: \d+ have · \d+ in flight · \d+ missing/)
      // the name as text, nothing of it run or made into an element
      expect(second.name).toBe(PAYLOAD)
      expect(second.pwned).toBeUndefined()
      expect(second.images).toBe(0)
      expect(second.violations).toEqual([])
      expect(errors).toEqual([])
      // the leechers' columns of the table: one row per connected peer, each with its share
      expect(second.table).toMatch(/%/)
      await page.screenshot({ path: SCREENSHOT })
      console.log(`test/ui/browser.test.ts: screenshot saved to ${SCREENSHOT}`)
    } finally {
      await browser.close()
    }
  }, 60_000)
})
