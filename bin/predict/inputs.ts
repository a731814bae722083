// What vitrine predict reads: files, folders (walked recursively) and globs, each image once, in a
// stable order; the share of them one shard takes; and the key a result is resumed by.

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { glob } from 'tinyglobby';
import { CliError } from '../cli-util.js';

/** Extensions taken from folders (a file named on the command line, or matched by a glob, is tried whatever its name). */
export const IMAGE_EXTENSIONS = Object.freeze(['.jpg', '.jpeg', '.png', '.gif', '.webp', '.avif', '.heic', '.heif', '.tif', '.tiff']);
const isImageName = (name: string) => IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());

export interface Input {
  /** As it is written in the results: the argument joined with the path found under it. */
  path: string;
  size: number;
  mtimeMs: number;
}

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

/** `i/n`, 1 <= i <= n. */
export function parseShard(text: string): Shard {
  const m = /^([0-9]+)\/([0-9]+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count)
    throw new CliError(`--shard must be i/n with 1 <= i <= n (e.g. 2/8), got '${text}'`, 2);
  return { index, count };
}

/** The shard from --shard, or from --shards n and the index Kubernetes gives each pod of an Indexed Job. */
export function shardOf(shard: string | undefined, shards: string | undefined, env: NodeJS.ProcessEnv): Shard | null {
  if (shard !== undefined && shards !== undefined)
    throw new CliError('give --shard i/n or --shards n (the index from JOB_COMPLETION_INDEX), not both', 2);
  if (shard !== undefined) return parseShard(shard);
  if (shards === undefined) return null;
  const count = Number(shards);
  if (!Number.isInteger(count) || count < 1) throw new CliError(`--shards must be an integer >= 1, got '${shards}'`, 2);
  const raw = env.JOB_COMPLETION_INDEX;
  if (raw === undefined || raw === '')
    throw new CliError(
      '--shards needs JOB_COMPLETION_INDEX (set by Kubernetes in the pods of an Indexed Job); elsewhere give --shard i/n',
      2,
    );
  const index = Number(raw);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new CliError(
      `JOB_COMPLETION_INDEX is '${raw}': with --shards ${count} it must be 0-${count - 1} (the Job's completions must equal --shards)`,
      2,
    );
  return { index: index + 1, count };
}

/** Whether the shard takes this path: a hash of the path, so the share does not depend on the order or
 *  number of the other inputs, and every pod that lists the same arguments agrees. */
export function inShard(file: string, shard: Shard | null): boolean {
  if (!shard || shard.count === 1) return true;
  return createHash('sha1').update(file).digest().readUInt32BE(0) % shard.count === shard.index - 1;
}

/** What a result is resumed by: the same path, size and modification time. */
export const inputKey = (i: { path: string; size: number; mtimeMs: number }) => `${i.path}\u0000${i.size}\u0000${i.mtimeMs}`;

const hasGlob = (arg: string) => /[*?[\]{}]/.test(arg);

async function walk(dir: string, found: string[], skipped: string[]): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new CliError(`cannot read the folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith('.')) continue; // .DS_Store, .ipynb_checkpoints, a sync tool's folders
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, found, skipped);
    else if (e.isFile() || e.isSymbolicLink()) (isImageName(e.name) ? found : skipped).push(p);
  }
}

/**
 * Every input of the arguments, each path once, sorted; `skipped` has the files in folders whose
 * names are not images'. Only the shard's paths are looked at further (stat), so N pods listing a
 * million files each stat their own share.
 */
export async function listInputs(args: readonly string[], shard: Shard | null): Promise<{ inputs: Input[]; skipped: string[] }> {
  const paths = new Set<string>();
  const skipped: string[] = [];
  for (const arg of args) {
    const stat = await fs.stat(arg).catch(() => null);
    if (stat?.isDirectory()) {
      const found: string[] = [];
      await walk(arg, found, skipped);
      for (const p of found) paths.add(p);
    } else if (stat) paths.add(path.normalize(arg));
    else if (hasGlob(arg)) {
      const matched = await glob(arg, { onlyFiles: true, expandDirectories: false, absolute: path.isAbsolute(arg) });
      if (matched.length === 0) throw new CliError(`${arg} matches no file`);
      // a pattern names what it wants: every file it matches is tried, as a file named is
      for (const p of matched) paths.add(path.normalize(p));
    } else throw new CliError(`${arg}: no such file or folder`);
  }
  const inputs: Input[] = [];
  for (const p of [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!inShard(p, shard)) continue;
    const s = await fs.stat(p).catch(() => null);
    // a file that vanished since it was listed still gets its line (with the error) when it is read
    inputs.push({ path: p, size: s?.size ?? -1, mtimeMs: s?.mtimeMs ?? -1 });
  }
  return { inputs, skipped };
}

/** A map's file under the output folder: maps/<the input's path>.<method>.png, the path taken from the
 *  current folder when the input is under it, else the whole path without its root, so that
 *  every input has its own. */
export function mapFile(input: string, method: string, cwd = process.cwd()): string {
  const relative = path.relative(cwd, path.resolve(cwd, input));
  const under = relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
  const parts = (under ? relative : path.resolve(cwd, input)).split(/[\\/]+/).filter((s) => s !== '' && !/^[A-Za-z]:$/.test(s));
  return path.join('maps', ...parts.slice(0, -1), `${parts.at(-1)}.${method}.png`);
}
