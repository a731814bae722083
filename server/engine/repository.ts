// The models while serving: every folder under --models, and the version of each that answers. A
// load reads the folder, opens the new version's sessions in every worker beside the old ones, runs it
// once, and only then sends new work to it; the old version's queued and running work finishes there,
// and then its sessions are released. A request that took the old version just before the switch
// may still submit to it until its deadline (--timeout-ms), so the old sessions stay that long at
// least. A load that fails leaves the old version serving and says why. An unload stops new work at
// once and releases the sessions the same way.

import { Errors } from '../errors.js';
import type { Batcher } from './batcher.js';
import { type Inference, workerModelOf } from './inference.js';
import {
  type ServedModel,
  type Sources,
  describeSources,
  folderOf,
  isModelFolder,
  loadModelFolder,
  modelFolderNames,
  versionKey,
} from './models.js';

/** The Open Inference Protocol's model states, as Triton's repository index gives them. */
export type ModelState = 'READY' | 'LOADING' | 'UNLOADING' | 'UNAVAILABLE';

export interface IndexEntry {
  name: string;
  /** The version serving (or last served), as a string as the protocol has it; '' if none ever did. */
  version: string;
  state: ModelState;
  reason: string;
}

/** A plain folder name: what a model may be called (no path, no dot names). */
export function checkModelName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.length > 128)
    throw Errors.badRequest(`'${name}' is not a model name: a folder under --models, letters, digits, '.', '_' and '-'`);
}

export interface RepositoryObserver {
  changed(name: string, result: 'loaded' | 'failed' | 'unloaded', serving: ServedModel | undefined): void;
}

export class ModelRepository {
  private readonly status = new Map<string, { state: ModelState; reason: string; version: number }>();
  private readonly versions = new Map<string, number>();
  /** One load or unload at a time per model, in the order asked. */
  private readonly queue = new Map<string, Promise<unknown>>();

  /** `models` is the list the routes read: it is changed in place. */
  constructor(
    private readonly sources: Sources,
    readonly models: ServedModel[],
    private readonly inference: Pick<Inference, 'pool' | 'batcher'>,
    private readonly log: { info(m: string): void; warn(m: string): void },
    /** How long a request may hold a version it took (the service's --timeout-ms). */
    private readonly graceMs: number,
    /** Told of every load, failed load and unload (the metrics). */
    private readonly observer: RepositoryObserver = { changed: () => {} },
  ) {
    for (const m of models) {
      this.versions.set(m.name, m.version);
      this.status.set(m.name, { state: 'READY', reason: '', version: m.version });
    }
  }

  private get batcher(): Batcher {
    return this.inference.batcher;
  }

  /** The version answering for `name`, if one is. */
  get(name: string): ServedModel | undefined {
    return this.models.find((m) => m.name === name);
  }

  /** Why a model is not served, when the repository knows it (unloaded, or a load that failed). */
  whyNot(name: string): string | null {
    const s = this.status.get(name);
    if (!s || s.state === 'READY') return null;
    return s.state === 'UNAVAILABLE' ? s.reason || 'it is not loaded' : `it is ${s.state.toLowerCase()}`;
  }

  /** Every model folder under --models and every model known, with its state. */
  async index(): Promise<IndexEntry[]> {
    const names = new Set([...this.status.keys(), ...(await modelFolderNames(this.sources))]);
    return [...names].sort().map((name) => {
      const s = this.status.get(name);
      return { name, version: s ? String(s.version) : '', state: s?.state ?? 'UNAVAILABLE', reason: s?.reason ?? '' };
    });
  }

  /** Loads the model's folder as a new version (a reload when one is serving). */
  load(name: string): Promise<ServedModel> {
    return this.serially(name, () => this.loadNow(name));
  }

  /** Stops serving the model and releases its sessions once its work is answered. */
  unload(name: string): Promise<void> {
    return this.serially(name, () => this.unloadNow(name));
  }

  private serially<T>(name: string, step: () => Promise<T>): Promise<T> {
    try {
      checkModelName(name);
    } catch (err) {
      return Promise.reject(err);
    }
    const next = (this.queue.get(name) ?? Promise.resolve()).then(step, step);
    this.queue.set(
      name,
      next.catch(() => {}),
    );
    return next;
  }

  private setStatus(name: string, state: ModelState, reason: string, version: number): void {
    this.status.set(name, { state, reason, version });
  }

  private async loadNow(name: string): Promise<ServedModel> {
    const old = this.get(name);
    const version = (this.versions.get(name) ?? 0) + 1;
    const dir = folderOf(this.sources, name);
    this.setStatus(name, 'LOADING', old ? `version ${old.version} serves while version ${version} loads` : '', old?.version ?? version);
    this.versions.set(name, version); // a load that fails uses its number too, as its messages say
    let loaded = false;
    let model: ServedModel | null = null;
    try {
      if (dir === null || !isModelFolder(dir)) throw new Error(`no model folder ${name} under ${describeSources(this.sources)}`);
      const read = await loadModelFolder(dir, name, (m) => this.log.warn(m));
      model = { ...read, version, key: versionKey(name, version) };
      await this.inference.pool.load(workerModelOf(model));
      loaded = true;
      // one run before any request goes to it
      const [c, h, w] = [model.config.mean.length, model.config.image_size[0], model.config.image_size[1]];
      await this.batcher.submit(model.key, new Float32Array(c * h * w));
    } catch (err) {
      if (loaded && model) this.inference.pool.unload(model.key);
      const reason = `version ${version} did not load: ${(err as Error).message}`;
      this.setStatus(
        name,
        old ? 'READY' : 'UNAVAILABLE',
        old ? `${reason}; version ${old.version} serves` : reason,
        old?.version ?? version,
      );
      this.log.warn(`model ${name}: ${reason}`);
      this.observer.changed(name, 'failed', old);
      throw Errors.badRequest(`model '${name}': ${reason}`);
    }
    // the switch: from here new work goes to the new version
    const at = this.models.findIndex((m) => m.name === name);
    if (at >= 0) this.models[at] = model;
    else {
      this.models.push(model);
      this.models.sort((a, b) => a.name.localeCompare(b.name));
    }
    this.setStatus(name, 'READY', '', version);
    this.observer.changed(name, 'loaded', model);
    this.log.info(`model ${name}: version ${version} serves${old ? ` (version ${old.version} finishes its work, then is released)` : ''}`);
    if (old) void this.release(old);
    return model;
  }

  private async unloadNow(name: string): Promise<void> {
    const old = this.get(name);
    if (!old) throw Errors.unknownModel(`model '${name}' is not loaded`);
    this.setStatus(name, 'UNLOADING', '', old.version);
    this.models.splice(this.models.indexOf(old), 1);
    this.observer.changed(name, 'unloaded', undefined);
    void this.release(old, () => {
      if (this.status.get(name)?.state === 'UNLOADING') this.setStatus(name, 'UNAVAILABLE', 'unloaded', old.version);
      this.log.info(`model ${name}: version ${old.version} unloaded`);
    });
  }

  /** Versions being released: released() waits for them (tests, shutdown). */
  private readonly releasing = new Set<Promise<void>>();

  /** Once no request can still hold the version and its work is answered, its sessions go. */
  private release(old: ServedModel, after?: () => void): Promise<void> {
    const done = (async () => {
      await new Promise((r) => setTimeout(r, this.graceMs).unref());
      await this.batcher.idle(old.key);
      this.inference.pool.unload(old.key);
      after?.();
    })();
    this.releasing.add(done);
    return done.finally(() => this.releasing.delete(done));
  }

  /** Resolves when every version replaced or unloaded so far has been released. */
  async released(): Promise<void> {
    await Promise.all([...this.releasing]);
  }
}
