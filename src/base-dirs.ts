/**
 * bitswarm's own folder under the XDG base directories: `$XDG_<KIND>_HOME/bitswarm`, else
 * `<home>/.local/state/bitswarm` (state: the peer cache) or `<home>/.cache/bitswarm` (cache:
 * the command's code cache). Node built-ins only: the `bitswarm` launcher loads it too.
 */
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'

const DEFAULTS = { state: ['.local', 'state'], cache: ['.cache'] } as const

export function xdgDir (kind: 'state' | 'cache', env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env[kind === 'state' ? 'XDG_STATE_HOME' : 'XDG_CACHE_HOME']
  // the XDG base-dir spec says a relative value is invalid and must be ignored
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'bitswarm')
  return join(home, ...DEFAULTS[kind], 'bitswarm')
}
