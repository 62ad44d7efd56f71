import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { EmptySelectionError, InvalidGlobError, MAX_GLOB_LENGTH, compileSelection, selectFiles } from '../../src/manifest/select.js'

/** does `glob` select the file at `path` ('/'-separated here for brevity) */
function m (glob: string, path: string): boolean {
  return compileSelection([glob])(path.split('/'))
}

describe('compileSelection: the grammar', () => {
  it('matches whole paths, literally', () => {
    expect(m('a.jpg', 'a.jpg')).toBe(true)
    expect(m('a.jpg', 'x/a.jpg')).toBe(false)
    expect(m('x/a.jpg', 'x/a.jpg')).toBe(true)
    expect(m('x', 'x/a.jpg')).toBe(false)
    expect(m('a.jp', 'a.jpg')).toBe(false)
    expect(m('A.JPG', 'a.jpg')).toBe(false) // case-sensitive
  })

  it('* is any run within one component, never across /', () => {
    expect(m('*.jpg', 'b.jpg')).toBe(true)
    expect(m('*.jpg', 'a/b.jpg')).toBe(false)
    expect(m('*.jpg', '.jpg')).toBe(true) // empty run; dot files are not special
    expect(m('*', '.hidden')).toBe(true)
    expect(m('*', 'a')).toBe(true)
    expect(m('*', 'a/b')).toBe(false)
    expect(m('a/*', 'a/b')).toBe(true)
    expect(m('a/*', 'a/b/c')).toBe(false)
    expect(m('*/*', 'a/b')).toBe(true)
    expect(m('a*b*c', 'aXbYc')).toBe(true)
    expect(m('a*b*c', 'abc')).toBe(true)
    expect(m('a*b*c', 'aXbY')).toBe(false)
    expect(m('*a*', 'bab')).toBe(true)
  })

  it('? is one character, never /', () => {
    expect(m('?.jpg', 'a.jpg')).toBe(true)
    expect(m('?.jpg', 'ab.jpg')).toBe(false)
    expect(m('?.jpg', '.jpg')).toBe(false)
    expect(m('a?b', 'a/b')).toBe(false)
    expect(m('??', 'ab')).toBe(true)
    expect(m('*?', '')).toBe(false)
  })

  it('** at the start matches any depth, none included', () => {
    expect(m('**/*.jpg', 'b.jpg')).toBe(true)
    expect(m('**/*.jpg', 'a/b.jpg')).toBe(true)
    expect(m('**/*.jpg', 'a/b/c/d.jpg')).toBe(true)
    expect(m('**/*.jpg', 'a/b.png')).toBe(false)
    expect(m('**/*.jpg', 'a.jpg/b.png')).toBe(false)
  })

  it('** in the middle', () => {
    expect(m('a/**/z', 'a/z')).toBe(true)
    expect(m('a/**/z', 'a/b/z')).toBe(true)
    expect(m('a/**/z', 'a/b/c/z')).toBe(true)
    expect(m('a/**/z', 'b/a/z')).toBe(false)
    expect(m('a/**/z', 'a/z/x')).toBe(false)
    expect(m('a/**/b/**/c', 'a/x/b/y/b/c')).toBe(true)
    expect(m('a/**/b/**/c', 'a/c')).toBe(false)
  })

  it('** at the end, and alone', () => {
    expect(m('photos/**', 'photos/a.jpg')).toBe(true)
    expect(m('photos/**', 'photos/2024/x/a.jpg')).toBe(true)
    expect(m('photos/**', 'photos')).toBe(true) // none: a file named "photos"
    expect(m('photos/**', 'photosX/a.jpg')).toBe(false)
    expect(m('photos/**', 'other/photos/a.jpg')).toBe(false)
    expect(m('**', 'a')).toBe(true)
    expect(m('**', 'a/b/c')).toBe(true)
    expect(m('**/**', 'a/b')).toBe(true)
    expect(m('**/a/**', 'x/a/y')).toBe(true)
    expect(m('**/a/**', 'x/b/y')).toBe(false)
  })

  it('matches Unicode names by code point, in NFC', () => {
    expect(m('fotos/été/*.jpg', 'fotos/été/1.jpg')).toBe(true)
    expect(m('日本/?.txt', '日本/語.txt')).toBe(true)
    expect(m('?.txt', '🐝.txt')).toBe(true) // one code point, two UTF-16 units
    expect(m('??.txt', '🐝.txt')).toBe(false)
    const composed = 'caf\u00e9.txt'
    const decomposed = 'cafe\u0301.txt'
    expect(m(decomposed, composed)).toBe(true)
    expect(m(composed, decomposed)).toBe(true)
    expect(m('caf?.txt', decomposed)).toBe(true)
  })

  it('takes [ ] { } ( ) ! + @ literally', () => {
    expect(m('Song [Live].mp3', 'Song [Live].mp3')).toBe(true)
    expect(m('Song [Live].mp3', 'Song L.mp3')).toBe(false)
    expect(m('{a,b}.txt', '{a,b}.txt')).toBe(true)
    expect(m('{a,b}.txt', 'a.txt')).toBe(false)
    expect(m('!(x).txt', '!(x).txt')).toBe(true)
    expect(m('+@(x)', '+@(x)')).toBe(true)
  })

  it('any of several globs', () => {
    const sel = compileSelection(['*.jpg', 'docs/**'])
    expect(sel(['a.jpg'])).toBe(true)
    expect(sel(['docs', 'x', 'y.pdf'])).toBe(true)
    expect(sel(['a.png'])).toBe(false)
  })

  it('stays fast on a hostile name (no backtracking blow-up)', () => {
    const name = 'a'.repeat(255)
    const path = Array.from({ length: 64 }, () => name)
    const start = performance.now()
    expect(compileSelection(['**/*a*a*a*a*a*a*a*a*b'])(path)).toBe(false)
    expect(compileSelection(['**/x/**/y/**/z'])(path)).toBe(false)
    expect(performance.now() - start).toBeLessThan(1000)
  })
})

describe('compileSelection rejects invalid globs', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /is empty/],
    ['/etc/passwd', /is absolute/],
    ['../x', /"\.\."/],
    ['a/../b', /"\.\."/],
    ['a/./b', /"\."/],
    ['a\\b', /contains '\\'/],
    ['a\0b', /contains NUL/],
    ['a//b', /empty component/],
    ['photos/', /ends with '\/'.*"photos\/\*\*"/],
    ['a**b', /'\*\*' must be a whole component/],
    ['**.jpg', /'\*\*' must be a whole component/],
    ['a/\ud800', /well-formed Unicode/],
    ['x'.repeat(MAX_GLOB_LENGTH + 1), /longer than/]
  ]
  for (const [glob, reason] of cases) {
    it(`rejects ${JSON.stringify(glob.slice(0, 20))}`, () => {
      let caught: unknown
      try { compileSelection(['ok', glob]) } catch (err) { caught = err }
      expect(caught).toBeInstanceOf(InvalidGlobError)
      expect((caught as InvalidGlobError).glob).toBe(glob)
      expect((caught as InvalidGlobError).reason).toMatch(reason)
      expect((caught as Error).message).toMatch(/^invalid selection /)
    })
  }

  it('rejects an empty list of globs', () => {
    expect(() => compileSelection([])).toThrow(InvalidGlobError)
  })
})

describe('selectFiles', () => {
  const files = [
    { path: ['a.jpg'] },
    { path: ['b.png'] },
    { path: ['2024', 'c.jpg'] },
    { path: ['2024', 'd', 'e.jpg'] },
    { path: ['docs', 'readme.txt'] }
  ]

  it('gives the indexes selected, ascending, each once', () => {
    expect(selectFiles(files, ['*.jpg'])).toEqual([0])
    expect(selectFiles(files, ['**/*.jpg'])).toEqual([0, 2, 3])
    expect(selectFiles(files, ['docs/**', '**/*.jpg', '*.jpg'])).toEqual([0, 2, 3, 4])
    expect(selectFiles(files, ['2024/*'])).toEqual([2])
  })

  it('throws EmptySelectionError when nothing matches', () => {
    expect(() => selectFiles(files, ['*.jpeg', 'nope/**'])).toThrow(EmptySelectionError)
    expect(() => selectFiles(files, ['*.jpeg'])).toThrow('no file matches the selection "*.jpeg"')
    expect(() => selectFiles([], ['**'])).toThrow(EmptySelectionError)
  })

  it('throws InvalidGlobError before looking at files', () => {
    expect(() => selectFiles(files, ['../a.jpg'])).toThrow(InvalidGlobError)
  })
})

describe('compileSelection against a regular-expression reference', () => {
  /** the glob as a regular expression over the '/'-joined path (small alphabets only) */
  function reference (glob: string): RegExp {
    const parts = glob.split('/').filter((p, i, all) => !(p === '**' && all[i - 1] === '**'))
    const one = (p: string): string => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')
    if (parts.length === 1 && parts[0] === '**') return /^[^/]+(?:\/[^/]+)*$/
    let re = ''
    parts.forEach((p, i) => {
      const last = i === parts.length - 1
      if (p === '**') re += last ? '(?:/[^/]+)*' : `${i > 0 ? '/' : ''}(?:[^/]+/)*`
      else re += (i > 0 && parts[i - 1] !== '**' ? '/' : '') + one(p)
    })
    return new RegExp(`^${re}$`)
  }

  it('agrees on random globs and paths', () => {
    const comp = fc.stringMatching(/^[ab*?]{1,4}$/).filter(c => !c.includes('**'))
    const glob = fc.array(fc.oneof(comp, fc.constant('**')), { minLength: 1, maxLength: 4 }).map(parts => parts.join('/'))
    const path = fc.array(fc.stringMatching(/^[ab]{1,4}$/), { minLength: 1, maxLength: 5 })
    fc.assert(fc.property(glob, path, (g, p) => {
      expect(compileSelection([g])(p)).toBe(reference(g).test(p.join('/')))
    }), { numRuns: 5000 })
  })
})
