// What every benchmark shares: its flags, parsed as the vitrine command parses its own (strict: an
// unknown flag or a missing value is a one-line error and exit 2), and its result, printed as JSON
// lines and written with its command, commit, machine and date to bench/results/, from which
// `npm run bench:report` generates docs/benchmarks.md.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { type Parsed, parseStrict } from '../runtime/args.js';

export const BENCH_ROOT = path.resolve(import.meta.dirname, '..');
export const RESULTS_DIR = path.join(BENCH_ROOT, 'bench', 'results');

type Options = NonNullable<ParseArgsConfig['options']>;

/** The bench's flags (`--save false` keeps its result out of bench/results/). `usage` is printed with
 *  --help and under an error. */
export function benchFlags<T extends Options>(usage: string, options: T): Parsed<T & typeof COMMON>['values'] {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseStrict(argv, { ...options, ...COMMON });
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
}

const COMMON = { save: { type: 'string' } } as const;

/** A figure: a number or a short word; lists and objects (per-class accuracies, the BLAS an anchor
 *  loaded) are kept in the result file, not in the page's tables. */
export type Value = string | number | boolean | null | readonly Value[] | { readonly [key: string]: Value };

/** One row of figures, by name. */
export type Row = Record<string, Value>;

export interface BenchResult {
  /** The npm script (or file) and its arguments, as rerun. */
  command: string;
  /** What was measured, one sentence. */
  what: string;
  rows: Row[];
  commit: string;
  machine: { cpu: string; cores: number; node: string; os: string };
  date: string;
}

function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: BENCH_ROOT, encoding: 'utf8' }).trim();
    // the results and the page made from them do not count: rerunning benches rewrites them
    const args = ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results', ':!docs/benchmarks.md'];
    const dirty = execFileSync('git', args, { cwd: BENCH_ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

/** Collects a bench's rows (each printed as a JSON line as it comes) and writes them at the end. */
export class Results {
  private readonly rows: Row[] = [];

  /** `name`: the bench's script name (bench:<name>); the file is named after it and its arguments. */
  constructor(
    private readonly name: string,
    private readonly what: string,
  ) {}

  add(row: Row): void {
    console.log(JSON.stringify({ bench: this.name, ...row }));
    this.rows.push(row);
  }

  /** Writes bench/results/<name>[--<arguments>].json, unless --save false. */
  save(): string | null {
    const args = process.argv.slice(2);
    const at = args.indexOf('--save');
    if (at >= 0 && args[at + 1] === 'false') return null;
    const kept = at < 0 ? args : args.filter((_, i) => i !== at && i !== at + 1);
    const result: BenchResult = {
      command: `npm run bench:${this.name}${kept.length ? ` -- ${kept.join(' ')}` : ''}`,
      what: this.what,
      rows: this.rows,
      commit: commitOf(),
      machine: { cpu: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism(), node: process.version, os: os.platform() },
      date: new Date().toISOString().slice(0, 10),
    };
    const variant = kept
      .join('-')
      .replace(/[^a-zA-Z0-9.,]+/g, '-')
      .replace(/^-+|-+$/g, '');
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `${this.name}${variant ? `--${variant}` : ''}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.error(`result written to ${path.relative(BENCH_ROOT, file)}`);
    return file;
  }
}

/** The flags as getters, for benches that read them one at a time (`arg('seconds', '15')`); parsed
 *  strictly up front by benchFlags, so an unknown flag or a missing value stops the bench at once. */
export function benchArgs(usage: string, spec: { strings: readonly string[]; booleans?: readonly string[]; multiple?: readonly string[] }) {
  const options: Options = {};
  for (const name of spec.strings) options[name] = { type: 'string', multiple: spec.multiple?.includes(name) ?? false };
  for (const name of spec.booleans ?? []) options[name] = { type: 'boolean' };
  const values = benchFlags(usage, options) as Record<string, string | string[] | boolean | undefined>;
  function arg(name: string): string | undefined;
  function arg(name: string, fallback: string): string;
  function arg(name: string, fallback?: string): string | undefined {
    const v = values[name];
    return typeof v === 'string' ? v : fallback;
  }
  return {
    arg,
    num: (name: string, fallback: number) => (typeof values[name] === 'string' ? Number(values[name]) : fallback),
    flag: (name: string) => values[name] === true,
    all: (name: string) => (Array.isArray(values[name]) ? (values[name] as string[]) : []),
  };
}
