// One map of one image, as GET /attention/:id and vitrine predict make it: which parameters apply to
// which method (400s naming the misfit), then the model run again on the image's input, for its
// attentions or, for the class-specific methods, through the explanation graph for the class (one run
// gives all three of those; a cache, when given, keeps every map made so none is made twice).

import type { Batcher, JobResult, ModelInput } from './batcher.js';
import { type HeadFusion, clsAttention, rollout } from './attention.js';
import { Errors, Refusals } from '../errors.js';
import type { ServedModel } from './models.js';

export type MapMethod = 'rollout' | 'cls' | 'relevance' | 'chefer' | 'grad-input' | 'combined';
export const MAP_METHODS: readonly MapMethod[] = Object.freeze(['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined']);
/** The methods an explanation graph gives, for a class: relevance from the light graph (or the full
 *  one), the others from one run of the full graph, which makes all four. */
export const CLASS_METHODS: readonly MapMethod[] = Object.freeze(['relevance', 'chefer', 'grad-input', 'combined']);
/** How the default map is made (GET /attention's and /classify's `rule`). */
export const RELEVANCE_RULE = 'last-block chefer, rolled out (share 0.6 kept in place)';
/** How the combined map is made. */
export const COMBINED_RULE = '(chefer + rollout) x sqrt(grad-input)';
const isClassMethod = (m: MapMethod) => CLASS_METHODS.includes(m);

/** The methods a served model's maps can be made with (GET /models' list, and what checkMapQuery
 *  admits): none without attention outputs; rollout and cls from the attentions; the class methods
 *  with an explanation graph, gradient x input and the combined map only where it has that output. */
export function methodsOf(model: ServedModel): MapMethod[] {
  if (!model.grid) return [];
  if (!model.explanationFile) return ['rollout', 'cls'];
  return model.config.relevance?.input_gradient_output
    ? [...MAP_METHODS]
    : MAP_METHODS.filter((m) => m !== 'grad-input' && m !== 'combined');
}

/** Where the maps made of a kept result are kept (the results store), by mapKey. */
export interface MapCache {
  get(key: string): Promise<Float32Array | undefined>;
  put(key: string, values: Float32Array): Promise<void>;
}

export interface MapQuery {
  method?: MapMethod;
  /** relevance: the class, a label or an index (default: the top prediction). */
  class?: string;
  layer?: number;
  head?: string;
  discard?: number;
}

/** A class given as a label or an index. */
export function classIndex(text: string, labels: readonly string[]): number {
  const byLabel = labels.indexOf(text);
  if (byLabel >= 0) return byLabel;
  if (/^[0-9]+$/.test(text) && Number(text) < labels.length) return Number(text);
  throw Errors.badRequest(
    `unknown class '${text}': a label ` +
      `(${labels.slice(0, 12).join(', ')}${labels.length > 12 ? ', …' : ''}) ` +
      `or an index 0-${labels.length - 1}`,
  );
}

/** Refuses parameters that do not apply to the method (`given`: the ones named explicitly), and a
 *  method the model cannot give. */
export function checkMapQuery(model: ServedModel, q: MapQuery, given: { has(key: string): boolean }): void {
  if (!model.grid) throw Refusals.noMaps(model.name, 'is not served here with attention outputs');
  const method = q.method ?? 'rollout';
  if (method === 'rollout' && given.has('layer')) throw Errors.badRequest('layer applies to method=cls only: rollout combines every layer');
  if (method === 'cls' && given.has('discard')) throw Errors.badRequest('discard applies to method=rollout only');
  if (isClassMethod(method)) {
    for (const k of ['layer', 'head', 'discard'])
      if (given.has(k)) throw Errors.badRequest(`${k} does not apply to method=${method}: it weighs every head of every layer`);
    if (!methodsOf(model).includes(method))
      throw model.explanationFile ? Refusals.noInputGradient(model.name, method) : Refusals.noRelevance(model.name);
  } else if (given.has('class'))
    throw Errors.badRequest(
      'class applies to method=relevance, chefer, grad-input and combined only: rollout and cls do not depend on the class',
    );
  if (q.class !== undefined) classIndex(q.class, model.config.labels);
  const layers = model.config.attention_outputs.length;
  if (q.layer !== undefined && q.layer >= layers)
    throw Errors.badRequest(`layer ${q.layer} does not exist: the model has ${layers} layers (0-${layers - 1})`);
  // our models' configs carry the head count, so a bad head is refused before the model runs
  if (model.heads !== null) checkHead(q.head, model.heads);
}

function headOf(text: string): HeadFusion {
  return /^[0-9]+$/.test(text) ? Number(text) : (text as HeadFusion);
}

function checkHead(text: string | undefined, heads: number): void {
  const head = headOf(text ?? 'mean');
  if (typeof head === 'number' && head >= heads)
    throw Errors.badRequest(`head ${head} does not exist: the model has ${heads} heads (0-${heads - 1})`);
}

/** Whether a run of the model must return every layer's attentions for this map (rollout with heads
 *  averaged and nothing discarded is what the worker computes anyway; relevance runs another graph). */
export function needsAttentions(q: MapQuery): boolean {
  const method = q.method ?? 'rollout';
  return method === 'cls' || (method === 'rollout' && ((q.head ?? 'mean') !== 'mean' || (q.discard ?? 0) !== 0));
}

/** What names a map of a kept result: the method and what it depends on. */
export function mapKey(model: ServedModel, top: number, q: MapQuery): string {
  const method = q.method ?? 'rollout';
  if (isClassMethod(method)) return `${method}:${q.class === undefined ? top : classIndex(q.class, model.config.labels)}`;
  const layer = method === 'cls' ? (q.layer ?? model.config.attention_outputs.length - 1) : '';
  // the head as parsed ('001' is head 1), so that spellings of one map share its key
  return `${method}:${layer}:${headOf(q.head ?? 'mean')}:${method === 'rollout' ? (q.discard ?? 0) : ''}`;
}

/** The class-specific maps of one relevance run, under their keys, for a cache. */
export function classMaps(r: Pick<JobResult, 'relevance' | 'explanations'>, index: number): [string, Float32Array][] {
  const out: [string, Float32Array][] = [];
  if (r.relevance) out.push([`relevance:${index}`, r.relevance]);
  if (r.explanations) out.push([`chefer:${index}`, r.explanations.chefer]);
  if (r.explanations?.gradInput) out.push([`grad-input:${index}`, r.explanations.gradInput]);
  if (r.explanations?.combined) out.push([`combined:${index}`, r.explanations.combined]);
  return out;
}

/** A map over the patches (tokens - prefix values), its method, and what the JSON says of how it was made. */
export interface MadeMap {
  method: MapMethod;
  values: Float32Array;
  made: Record<string, unknown>;
}

/** The map over the patches and what the JSON says of how it was made. The
 *  model runs again on the input unless `ran`, a run of it already made, has what the map needs, or
 *  `cache` holds the map. */
export async function makeMap(
  batcher: Batcher,
  model: ServedModel,
  input: ModelInput,
  top: number,
  q: MapQuery,
  ran?: JobResult,
  cache?: MapCache,
): Promise<MadeMap> {
  const method = q.method ?? 'rollout';
  const key = mapKey(model, top, q);
  // a map from a shared store is used only if it is one value per patch
  const found = await cache?.get(key);
  const cached = found && model.grid && found.length === model.grid[0] * model.grid[1] ? found : undefined;
  if (isClassMethod(method)) {
    const labels = model.config.labels;
    const index = q.class === undefined ? top : classIndex(q.class, labels);
    const made = {
      class: labels[index],
      class_index: index,
      ...(method === 'relevance' ? { rule: RELEVANCE_RULE } : method === 'combined' ? { rule: COMBINED_RULE } : {}),
    };
    if (cached) return { method, values: cached, made };
    const r = await batcher.submit(model.key, input, { explain: { class: index, graph: method === 'relevance' ? 'light' : 'full' } });
    const maps = classMaps(r, index);
    if (cache) await Promise.all(maps.map(([k, v]) => cache.put(k, v)));
    return { method, values: maps.find(([k]) => k === key)![1], made };
  }
  const headText = q.head ?? 'mean';
  const head = headOf(headText);
  const layer = q.layer ?? model.config.attention_outputs.length - 1;
  const discard = q.discard ?? 0;
  const made = { ...(method === 'cls' ? { layer } : {}), head: headText, discard };
  if (cached) return { method, values: cached, made };
  const plain = !needsAttentions(q);
  const r = ran && (plain ? ran.rollout : ran.attentions) ? ran : await batcher.submit(model.key, input, { attentions: !plain });
  checkHead(headText, r.heads);
  let values: Float32Array;
  if (plain) values = r.rollout!;
  else {
    const stack = { layers: r.attentions!, heads: r.heads, tokens: r.tokens, prefix: r.prefix };
    values = method === 'rollout' ? rollout(stack, head, discard) : clsAttention(stack, layer, head);
  }
  await cache?.put(key, values);
  return { method, values, made };
}
