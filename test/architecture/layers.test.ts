/**
 * The layers point down (issue 11): no cycle between the folders of src/, and the library never
 * imports the command line. Read from the source text, as docs/ARCHITECTURE.md draws it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src')

function files (dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** a file's room: its folder under src/, or its own name for a file at the top */
function room (file: string): string {
  const parts = relative(SRC, file).split(sep)
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, '')
}

/** room → the rooms it imports from (relative imports inside src/ only) */
function graph (): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const f of files(SRC)) {
    const from = room(f)
    for (const m of readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = normalize(join(dirname(f), m[1])).replace(/\.js$/, '.ts')
      if (!target.startsWith(SRC + sep)) continue
      const to = room(target)
      if (to === from) continue
      if (!out.has(from)) out.set(from, new Set())
      out.get(from)?.add(to)
    }
  }
  return out
}

function reaches (g: Map<string, Set<string>>, from: string, to: string): boolean {
  const seen = new Set<string>()
  const todo = [from]
  while (todo.length > 0) {
    const r = todo.pop() as string
    for (const next of g.get(r) ?? []) {
      if (next === to) return true
      if (!seen.has(next)) { seen.add(next); todo.push(next) }
    }
  }
  return false
}

describe('layers', () => {
  const g = graph()

  it('no cycle between the rooms of src/', () => {
    const cycles: string[] = []
    for (const [a, tos] of g) for (const b of tos) if (reaches(g, b, a)) cycles.push(`${a} → ${b} → … → ${a}`)
    expect(cycles).toEqual([])
  })

  it('the library never imports the command line', () => {
    const up = [...g].filter(([from, tos]) => from !== 'cli' && tos.has('cli')).map(([from]) => from)
    expect(up).toEqual([])
  })
})
