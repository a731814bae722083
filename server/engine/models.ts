// The models a server serves: every folder under --models holding config.json and an ONNX graph
// (onnx/model.onnx, or model.onnx as earlier exports and optimum lay it out).

import { existsSync, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { CONFIG_FILE, MODEL_FILE, type ModelConfig, modelFileIn, readModelConfig } from '../../runtime/model-config.js';
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

/** The model folders' names under `root`, sorted (none when it cannot be read). */
export async function modelFolderNames(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && isModelFolder(path.join(root, e.name)))
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
}

export async function discoverModels(root: string, warn: (msg: string) => void): Promise<ServedModel[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read the models folder ${root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const models: ServedModel[] = [];
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = path.join(root, e.name);
    if (!isModelFolder(dir)) continue;
    try {
      models.push(await loadModelFolder(dir, e.name, warn));
    } catch (err) {
      warn(`skipping model ${e.name}: ${(err as Error).message}`);
    }
  }
  if (models.length === 0)
    throw new Error(`no models under ${root} (each model is a folder with ${CONFIG_FILE} and ${MODEL_FILE} or model.onnx)`);
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
