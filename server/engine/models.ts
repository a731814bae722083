// The models a server serves: every folder under --models holding config.json and an ONNX graph
// (onnx/model.onnx, or model.onnx as earlier exports and optimum lay it out), and model folders named
// one by one (vitrine serve runs/cats/model).

import { existsSync, promises as fs, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { CONFIG_FILE, MODEL_FILE, type ModelConfig, modelFileIn, readModelConfig, servedNameOf } from '../../runtime/model-config.js';
import { BUNDLED_MODELS } from '../../runtime/version.js';
import { IMPORT_HINT } from '../errors.js';

export interface ServedModel {
  name: string;
  /** The load this is (1 for the first; each reload while serving counts one more). */
  version: number;
  /** The version's sessions in the workers and its queues in the batcher: the name for version 1,
   *  `<name>/v<n>` after (a model's name, a folder's, has no '/'). */
  key: string;
  /** What identifies the version's files across processes and replicas (fingerprintOf): a kept
   *  result is explained only by the files that classified it. */
  fingerprint: string;
  dir: string;
  file: string;
  config: ModelConfig;
  /** Patch grid [rows, cols] when attention maps can be drawn, else null. */
  grid: [number, number] | null;
  /** Attention heads per layer when the config says (our models carry their ViT config), else null. */
  heads: number | null;
  /** The full explanation graph's file when the model has one (and attention maps), else null. */
  explanationFile: string | null;
  /** The light explanation graph's file (the last block's attention gradient only, for the default
   *  map) when the model has one; without it the default map comes from the full graph. */
  lightExplanationFile?: string | null;
}

function headsOf(c: ModelConfig): number | null {
  const h = c.attention_heads ?? c.vit?.num_attention_heads;
  return typeof h === 'number' && Number.isInteger(h) && h > 0 ? h : null;
}

function gridOf(c: ModelConfig): [number, number] | null {
  if (c.attention_outputs.length === 0 || !c.patch_size) return null;
  const [h, w] = c.image_size;
  if (h % c.patch_size !== 0 || w % c.patch_size !== 0) return null;
  return [h / c.patch_size, w / c.patch_size];
}

/** The model in `dir`, served as `name`; throws when its config cannot be read (warnings for what it lacks). */
export async function loadModelFolder(dir: string, name: string, warn: (msg: string) => void): Promise<ServedModel> {
  const file = modelFileIn(dir);
  if (!file) throw new Error(`${dir} holds no ${MODEL_FILE} (or model.onnx)`);
  const config = await readModelConfig(dir);
  const grid = gridOf(config);
  const relevanceFile = config.relevance ? path.join(dir, config.relevance.file) : null;
  if (relevanceFile && !existsSync(relevanceFile))
    warn(`model ${name}: config.json names ${config.relevance!.file}, which is not there: no relevance maps`);
  const explanationFile = grid && relevanceFile && existsSync(relevanceFile) ? relevanceFile : null;
  const lightFile = explanationFile && config.relevance?.light_file ? path.join(dir, config.relevance.light_file) : null;
  if (lightFile && !existsSync(lightFile))
    warn(
      `model ${name}: config.json names ${config.relevance!.light_file}, ` +
        `which is not there: its default maps come from ` +
        `${config.relevance!.file}, at the cost of a backward pass through ` +
        `every block`,
    );
  const lightExplanationFile = lightFile && existsSync(lightFile) ? lightFile : null;
  if (!grid)
    warn(
      `model ${name}: no attention ` +
        `outputs${config.attention_outputs.length > 0 ? ' with a patch grid' : ''}, ` +
        `so it is served without maps; ${IMPORT_HINT}`,
    );
  const fingerprint = await fingerprintOf(dir, file);
  return {
    name,
    version: 1,
    key: name,
    fingerprint,
    dir,
    file,
    config,
    grid,
    heads: headsOf(config),
    explanationFile,
    lightExplanationFile,
  };
}

/** Whether `dir` is a model folder: config.json and an ONNX graph. */
export const isModelFolder = (dir: string): boolean => modelFileIn(dir) !== null && existsSync(path.join(dir, CONFIG_FILE));

/**
 * Where models come from: a folder of model folders (--models), and model folders served one by one
 * under names of their own (`vitrine serve runs/cats/model`). A bare string is a folder of folders.
 */
export interface ModelSources {
  /** A folder whose subfolders are models; null for none. */
  root: string | null;
  /** Model folders by the name they are served under. */
  folders: Readonly<Record<string, string>>;
}

export type Sources = string | ModelSources;
export const sourcesOf = (s: Sources): ModelSources => (typeof s === 'string' ? { root: s, folders: {} } : s);

/**
 * The sources a server configuration names: its model folders (`[NAME=]DIR`, named by
 * servedNameOf without NAME), and the folder of folders: --models when given; with no model folders
 * given, ./models where it holds model folders, else the bundled models. Throws one line for two
 * folders of one name.
 */
export function resolveSources(c: { models: string | null; modelFolder: readonly string[] }, cwd = process.cwd()): ModelSources {
  const folders: Record<string, string> = {};
  for (const entry of c.modelFolder) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$/.exec(entry);
    const [name, dir] = m && !existsSync(entry) ? [m[1], m[2]] : [servedNameOf(entry), entry];
    if (folders[name] !== undefined)
      throw new Error(`two model folders would be served as '${name}' (${folders[name]}, ${dir}): name one, as NAME=DIR`);
    folders[name] = dir;
  }
  if (c.models !== null) return { root: c.models, folders };
  if (c.modelFolder.length > 0) return { root: null, folders };
  const local = path.join(cwd, 'models');
  return { root: modelFolderNamesIn(local).length > 0 ? 'models' : BUNDLED_MODELS, folders };
}

/** The model folders under `root`, as the folder is now (none when it cannot be read): for the
 *  commands' start and their messages, where waiting on a promise is not worth it. */
export function modelFolderNamesIn(root: string): string[] {
  try {
    return readdirSync(root).filter((name) => isModelFolder(path.join(root, name)));
  } catch {
    return [];
  }
}

/** The folder a model of that name is read from (null when no source could hold it). */
export function folderOf(sources: Sources, name: string): string | null {
  const s = sourcesOf(sources);
  return s.folders[name] ?? (s.root !== null ? path.join(s.root, name) : null);
}

/** The sources in words: "models/", "runs/cats/model", "models/ and runs/cats/model". */
export function describeSources(sources: Sources): string {
  const s = sourcesOf(sources);
  return [...(s.root !== null ? [s.root] : []), ...Object.values(s.folders)].join(' and ') || 'no folder';
}

/** The model folders' names, sorted (a folder of folders that cannot be read gives none). */
export async function modelFolderNames(sources: Sources): Promise<string[]> {
  const s = sourcesOf(sources);
  const entries = s.root !== null ? await fs.readdir(s.root, { withFileTypes: true }).catch(() => []) : [];
  const under = entries.filter((e) => e.isDirectory() && isModelFolder(path.join(s.root!, e.name))).map((e) => e.name);
  const named = Object.keys(s.folders).filter((name) => isModelFolder(s.folders[name]));
  return [...new Set([...named, ...under])].sort((a, b) => a.localeCompare(b));
}

export async function discoverModels(sources: Sources, warn: (msg: string) => void): Promise<ServedModel[]> {
  const s = sourcesOf(sources);
  if (s.root !== null) {
    try {
      await fs.readdir(s.root);
    } catch (err) {
      throw new Error(`cannot read the models folder ${s.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  for (const [name, dir] of Object.entries(s.folders))
    if (!isModelFolder(dir))
      throw new Error(
        `${dir} (model '${name}') is not a model folder: it needs ${CONFIG_FILE} and ${MODEL_FILE} or model.onnx ` +
          '(a training run writes one as <run>/model; vitrine export and vitrine import write one with --out)',
      );
  const models: ServedModel[] = [];
  for (const name of await modelFolderNames(s)) {
    try {
      models.push(await loadModelFolder(folderOf(s, name)!, name, warn));
    } catch (err) {
      warn(`skipping model ${name}: ${(err as Error).message}`);
    }
  }
  if (models.length === 0)
    throw new Error(`no models under ${describeSources(s)} (each model is a folder with ${CONFIG_FILE} and ${MODEL_FILE} or model.onnx)`);
  return models;
}

/** The session key of a model's version (ServedModel.key). */
export const versionKey = (name: string, version: number): string => (version === 1 ? name : `${name}/v${version}`);

const HASHED_WHOLE = 64 * 1024 * 1024;

/** A hash of the folder's configs and graphs (and their external weights): each file's contents up to
 *  64 MB, and beyond that its size and modification time. Replicas serving the same files agree. */
export async function fingerprintOf(dir: string, modelFile: string): Promise<string> {
  const hash = createHash('sha256');
  const graphs = path.dirname(modelFile);
  const names = (await fs.readdir(graphs)).filter((f) => /\.onnx(_data)?$|\.data$/.test(f)).sort();
  const files = [path.join(dir, CONFIG_FILE), path.join(dir, 'preprocessor_config.json'), ...names.map((f) => path.join(graphs, f))];
  for (const f of files) {
    const st = await fs.stat(f).catch(() => null);
    if (!st?.isFile()) continue;
    hash.update(`${path.relative(dir, f)}\0${st.size}\0`);
    if (st.size <= HASHED_WHOLE) hash.update(await fs.readFile(f));
    else hash.update(String(st.mtimeMs));
  }
  return hash.digest('hex').slice(0, 16);
}
