import { describe, expect, it } from 'vitest'
import { escapeText, jsonLine, safeText } from '../../src/cli/output.js'

describe('text output of untrusted strings', () => {
  it('shows controls, C1 controls and bidi marks escaped, leaves the rest alone', () => {
    expect(escapeText('a\x1b[2K\rcomplete: x\n')).toBe('a\\x1b[2K\\rcomplete: x\\n')
    expect(escapeText('tab\there\x00\x07\x7f')).toBe('tab\\there\\x00\\x07\\x7f')
    expect(escapeText('csi\u009b31m')).toBe('csi\\u009b31m')
    expect(escapeText('abc\u202etxt.exe \u2066x\u2069 \u200b \u2028')).toBe('abc\\u202etxt.exe \\u2066x\\u2069 \\u200b \\u2028')
    expect(escapeText('plain, ünïcödé, 日本, emoji 🐝, back\\slash')).toBe('plain, ünïcödé, 日本, emoji 🐝, back\\slash')
  })

  it('safeText escapes only the interpolated values', () => {
    const name = 'x\n\x1b[31mcomplete'
    expect(safeText`manifest: ${name}\n(${3})`).toBe('manifest: x\\n\\x1b[31mcomplete\n(3)')
  })

  it('jsonLine escapes what JSON.stringify leaves raw, and parses back to the same value', () => {
    const obj = { event: 'manifest', name: 'a\x1b\n\u009b\u202e\u2028b' }
    const line = jsonLine(obj)
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e\u2028]/)
    expect(JSON.parse(line)).toEqual(obj)
  })
})
