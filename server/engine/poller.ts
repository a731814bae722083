// --model-control poll: the models folder rescanned every interval. A new model folder is loaded, a
// changed one reloaded (a new version beside the old, nothing lost; repository.ts), a removed one
// unloaded (once missing from two scans: a folder replaced by a rename is not). A folder is acted on
// only once its files are the same in two scans in a row, so one still being copied or written is not
// read half-way; a load that failed is not tried again until
// the folder changes.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type Sources, folderOf, modelFolderNames } from './models.js';
import type { ModelRepository } from './repository.js';

/** The folder's files as names, sizes and modification times (cheap: no file is read). */
async function signatureOf(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await fs.readdir(d, { withFileTypes: true }).catch(() => [])).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await fs.stat(p).catch(() => null);
        if (st) parts.push(`${path.relative(dir, p)}:${st.size}:${st.mtimeMs}`);
      }
    }
  };
  await walk(dir);
  return parts.join('|');
}

export class FolderPoller {
  /** Each folder's signature at the last scan. */
  private readonly seen = new Map<string, string>();
  /** The signature each served (or refused) model was loaded from. */
  private readonly tried = new Map<string, string>();
  /** Folders missing at the last scan: gone only when missing twice (a folder replaced by a rename). */
  private readonly missing = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;

  constructor(
    private readonly sources: Sources,
    private readonly repository: ModelRepository,
    private readonly intervalMs: number,
    private readonly log: { warn(m: string): void },
  ) {}

  /** Takes the folders as they are for the models serving now, then scans every interval. */
  async start(): Promise<void> {
    for (const [name, sig] of await this.folders()) {
      this.seen.set(name, sig);
      if (this.repository.get(name)) this.tried.set(name, sig);
    }
    this.timer = setInterval(() => void this.scan(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.scanning;
  }

  private async folders(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const name of await modelFolderNames(this.sources)) out.set(name, await signatureOf(folderOf(this.sources, name)!));
    return out;
  }

  /** One scan (one at a time): loads, reloads and unloads what has settled since the last. */
  scan(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const now = await this.folders();
    const steps: Promise<unknown>[] = [];
    for (const [name, sig] of now) {
      this.missing.delete(name);
      const settled = this.seen.get(name) === sig;
      this.seen.set(name, sig);
      if (!settled || this.tried.get(name) === sig) continue;
      this.tried.set(name, sig);
      steps.push(this.repository.load(name).catch((err: Error) => this.log.warn(`poll: ${err.message}`)));
    }
    for (const name of [...this.seen.keys()])
      if (!now.has(name) && !this.missing.has(name)) this.missing.add(name);
      else if (!now.has(name)) {
        this.missing.delete(name);
        this.seen.delete(name);
        this.tried.delete(name);
        if (this.repository.get(name))
          steps.push(this.repository.unload(name).catch((err: Error) => this.log.warn(`poll: ${err.message}`)));
      }
    await Promise.all(steps);
  }
}
