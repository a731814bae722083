// Command-line flags for every command (the trainer's and the server's): node's parseArgs, with the
// cases it words badly said plainly. A flag that takes a value and is followed by a negative number
// takes it (`--epochs -1` is then refused by the flag's own check, saying what is accepted); one
// followed by another flag or nothing is "missing its value".

import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
/** What parseArgs gives for these options in strict mode. */
export type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: boolean }>
>;

const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/** Rewrites `--name -1` as `--name=-1`; throws one line for a value-taking flag without a value. */
export function normalizeArgs(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)$/.exec(tok);
    if (!m || options[m[1]]?.type !== 'string') {
      out.push(tok);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined) throw new Error(`--${m[1]} needs a value`);
    if (next.startsWith('-') && !NEGATIVE_NUMBER.test(next)) throw new Error(`--${m[1]} needs a value (got the flag ${next})`);
    out.push(`--${m[1]}=${next}`);
    i++;
  }
  return out;
}

/** parseArgs in strict mode; errors are one line that names the flag. */
export function parseStrict<T extends Options>(argv: readonly string[], options: T): Parsed<T>['values'] {
  return parseStrictWithInputs(argv, options, false).values;
}

/** The same, with arguments that are not flags (a command's inputs) allowed when `inputs`. */
export function parseStrictWithInputs<T extends Options>(argv: readonly string[], options: T, inputs = true): Parsed<T> {
  const args = normalizeArgs(argv, options);
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: inputs });
  } catch (err) {
    const e = err as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) {
      const near = closest(quoted.replace(/^-+/, '').split('=')[0], Object.keys(options));
      throw new Error(`unknown flag ${quoted}${near ? ` (did you mean --${near}?)` : ''}`);
    }
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && quoted)
      throw new Error(`unexpected argument '${quoted}' (every value follows its --flag)`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
      throw new Error(e.message.split('\n')[0].replace(/^Option '([^']+)'.*does not take an argument.*$/, '$1 takes no value'));
    throw new Error(e.message.split('\n')[0]);
  }
}

/** Edits (insertions, deletions, substitutions, swaps of neighbours) from a to b. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** The known name nearest a mistyped one: within two edits (one for short names), or the one it begins. */
export function closest(given: string, known: readonly string[]): string | null {
  const g = given.toLowerCase();
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(g, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best !== null && bestD <= (g.length <= 4 ? 1 : 2)) return best;
  const prefixed = known.filter((k) => g.length >= 3 && (k.startsWith(g) || g.startsWith(k)));
  return prefixed.length === 1 ? prefixed[0] : null;
}
