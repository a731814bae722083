// What every command shares: flag parsing that rejects unknown flags, and one-line errors.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { modelFolderNamesIn, resolveSources } from '../server/engine/models.js';
import type { ParseArgsConfig } from 'node:util';
import { type Parsed, parseStrict, parseStrictWithInputs } from '../runtime/args.js';
import { type ViTConfig, parseViTConfig } from '../trainer/vit/config.js';

/** An error whose message is the whole story: printed as one line, exit status 1 (2 for usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A usage error as one line: what is wrong, and where the flags are listed. */
export function usageError(message: string, usage: string): CliError {
  const command = /^usage: (vitrine \w+)/.exec(usage)?.[1] ?? 'vitrine';
  return new CliError(`${message.split('\n')[0]} ('${command} --help' lists the flags)`, 2);
}

/** A parse whose error is a usage error: one line, exit status 2. */
function withUsage<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (err) {
    throw usageError((err as Error).message, usage);
  }
}

export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
): Parsed<T>['values'] {
  return withUsage(() => parseStrict(argv, options), usage);
}

/** A command's leading operand (what it works on, named before any flag), if given, and its flags. */
export function parseSourceAndFlags<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
): { source: string | undefined; flags: Parsed<T>['values'] } {
  const source = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  return { source, flags: parseFlags(source ? argv.slice(1) : argv, options, usage) };
}

/** The flags and the arguments that are not flags (a command's inputs). */
export function parseFlagsAndInputs<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
): Parsed<T> {
  return withUsage(() => parseStrictWithInputs(argv, options), usage);
}

export function intFlag(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`--${name} must be an integer >= ${min}, got '${value}'`, 2);
  return n;
}

export function numberFlag(value: string | undefined, name: string, fallback: number, min = -Infinity): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new CliError(`--${name} must be a number >= ${min}, got '${value}'`, 2);
  return n;
}

export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

export async function readViTConfig(file: string): Promise<ViTConfig> {
  return parseViTConfig(await readJsonFile(file), file);
}

/** Labels from a comma-separated list or a JSON file holding an array of strings. */
export async function parseLabels(value: string): Promise<string[]> {
  if (value.endsWith('.json')) {
    const raw = await readJsonFile(value);
    if (!Array.isArray(raw) || !raw.every((l) => typeof l === 'string'))
      throw new CliError(`${value}: expected a JSON array of label strings`);
    return raw;
  }
  return value.split(',').map((l) => l.trim());
}

/** Progress of a download or decode on stderr: one updating line on a terminal, else a line per 10%. */
export function progressPrinter(): { progress: (line: string, done: number, total: number) => void; warn: (line: string) => void } {
  let lastShown = -1;
  let partial = false; // a progress line without its newline is on the terminal
  const warn = (line: string) => {
    process.stderr.write(`${partial ? '\r\x1b[2K' : ''}warning: ${line}\n`);
    partial = false;
    lastShown = -1;
  };
  const progress = (line: string, done: number, total: number) => {
    const pct = total > 0 ? Math.floor((100 * done) / total) : -1;
    if (pct === lastShown || !(pct % 10 === 0 || process.stderr.isTTY)) return;
    lastShown = pct;
    const amount = pct >= 0 ? `${pct}%` : `${(done / 1e6).toFixed(0)} MB`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r\x1b[2K${line} ${amount}${done === total ? '\n' : ''}`);
      partial = done !== total;
    } else process.stderr.write(`${line} ${amount}\n`);
  };
  return { progress, warn };
}

/**
 * The model folder `arg` names: a folder with config.json (a run's model/, an export, an import), or a
 * model's name under `modelsDir` (default: ./models where it holds model folders, else the bundled
 * models, wherever the command runs). A one-line error names what there is.
 */
export function findModelFolder(arg: string, modelsDir?: string): string {
  if (existsSync(path.join(arg, 'config.json'))) return arg;
  const root = modelsDir ?? resolveSources({ models: null, modelFolder: [] }).root!;
  const dir = path.join(root, arg);
  if (!arg.includes('/') && existsSync(path.join(dir, 'config.json'))) return dir;
  if (existsSync(arg)) throw new CliError(`${arg} is not a model folder: it has no config.json (a run's model folder is <run>/model)`);
  if (arg.includes('/') || arg.includes(path.sep) || arg.startsWith('.')) throw new CliError(`model folder ${arg} does not exist`);
  const names = modelFolderNamesIn(root);
  throw new CliError(`no model '${arg}': not a model folder, nor a model under ${root}${names.length ? ` (${names.join(', ')})` : ''}`);
}
