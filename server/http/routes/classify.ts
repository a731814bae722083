// POST /classify: an image (multipart field `image`, or the raw body with an image/* type) ->
// predictions, logits, an attention map and timings.

import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { toGrid } from '../../engine/attention.js';
import { Errors, Refusals } from '../../errors.js';
import { imageSpec } from '../../../runtime/pixels.js';
import { type ClassifyOptions, type Classified, classifyAndExplain } from '../../engine/classify.js';
import type { ServedModel } from '../../engine/models.js';
import { mapCache } from '../../results/store.js';
import { decodeImage } from '../../engine/preprocess.js';
import { ClassifyQuery, ClassifyResponse, errors } from '../schemas.js';

async function readImage(request: FastifyRequest, bodyLimit: number): Promise<Buffer> {
  if (request.isMultipart()) {
    let part;
    try {
      part = await request.file({ limits: { fileSize: bodyLimit, files: 1 } });
    } catch (err) {
      throw Errors.badRequest(`malformed multipart body: ${(err as Error).message}`);
    }
    if (!part) throw Errors.badRequest("the multipart body has no file; send the image in a field named 'image'");
    if (part.fieldname !== 'image') throw Errors.badRequest(`the file is in field '${part.fieldname}'; send it in a field named 'image'`);
    try {
      return await part.toBuffer();
    } catch (err) {
      if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE')
        throw Errors.tooLarge(`the image is larger than ${bodyLimit} bytes`);
      throw Errors.badRequest(`the upload broke off: ${(err as Error).message}`);
    }
  }
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type && !type.startsWith('image/') && type !== 'application/octet-stream') {
    throw Errors.unsupportedMedia(
      `unsupported content type '${type}': send multipart/form-data (field image) or the raw image with an image/* type`,
    );
  }
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw Errors.badRequest('no image: send multipart/form-data with a field named image, or the raw bytes with an image/* content type');
  return body;
}

/** attention=full sends every probability as JSON (about 9 bytes each): a ViT-B/16 image would be
 *  12 x 12 x 197 x 197 = 5.6 million, 50 MB. Past this many the request is refused, saying what to ask for. */
export const MAX_FULL_VALUES = 1_000_000;

export function refuseLargeFull(layers: number, heads: number, tokens: number): void {
  const n = layers * heads * tokens * tokens;
  if (n > MAX_FULL_VALUES) {
    throw Errors.badRequest(
      `attention=full would carry ${layers} layers x ${heads} heads x ` +
        `${tokens} x ${tokens} tokens = ${n.toLocaleString('en-US')} values ` +
        `(about ${Math.round((n * 9) / 1e6)} MB of JSON), more than the ` +
        `${MAX_FULL_VALUES.toLocaleString('en-US')} a response carries: ask ` +
        `for attention=rollout, cls or relevance, or GET ` +
        `/attention/:id?method=cls&layer=<l>&head=<h> for one layer and head`,
    );
  }
}

/** What attention=… asks of the engine: a map of the top prediction, or every layer's attentions. */
function askOf(attention: Attention): Pick<ClassifyOptions, 'map' | 'attentions'> {
  if (attention === 'none') return { map: null };
  if (attention === 'full') return { map: null, attentions: true };
  return { map: { method: attention } };
}

type Attention = NonNullable<Static<typeof ClassifyQuery>['attention']>;
type AttentionBody = Static<typeof ClassifyResponse>['attention'];

/** The response's attention: the map made, or (full) a place held for the layers' JSON text. */
function attentionBodyOf(model: ServedModel, c: Classified, attention: Attention, layersMark: string): AttentionBody {
  if (!model.grid || attention === 'none') return undefined;
  const [rows, cols] = model.grid;
  if (attention === 'full') return { method: 'full', grid: [rows, cols], layers: layersMark as unknown as number[][][][] };
  const values = toGrid(c.map!.values, rows, cols);
  if (attention !== 'relevance') return { method: attention, grid: [rows, cols], values };
  return { method: 'relevance', class: model.config.labels[c.predictions[0].index], grid: [rows, cols], values };
}

export async function classifyRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const { config, batcher, results } = ctx;
  app.post<{ Querystring: Static<typeof ClassifyQuery> }>(
    '/classify',
    {
      config: { auth: true },
      schema: {
        summary: 'Classify an image',
        description:
          'multipart/form-data with the image in field `image`, or the raw bytes with an image/* content type. ' +
          'The format is sniffed from the bytes.',
        querystring: ClassifyQuery,
        response: { 200: ClassifyResponse, ...errors(400, 401, 404, 413, 415, 422, 500, 503, 504) },
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const model = ctx.model(request.query.model);
      const asked = request.query.attention;
      const attention = asked ?? 'rollout';
      if (asked && asked !== 'none' && !model.grid) throw Refusals.noMaps(model.name);
      if (asked === 'relevance' && !model.explanationFile) throw Refusals.noRelevance(model.name);
      const tokens = model.grid ? model.grid[0] * model.grid[1] + (model.config.prefix_tokens ?? 1) : 0;
      if (attention === 'full' && model.heads !== null) refuseLargeFull(model.config.attention_outputs.length, model.heads, tokens);

      const bytes = await readImage(request, config.bodyLimit);
      const image = await decodeImage(bytes, imageSpec(model.config), config.maxPixels, ctx.decoders, started + config.timeoutMs);
      const decoded = performance.now();

      const id = randomUUID();
      const [c] = await classifyAndExplain(batcher, model, [image.input], {
        tta: request.query.tta,
        topk: request.query.topk ?? 5,
        ...askOf(attention),
      });
      const r = c.result;
      // Kept for GET /attention/:id; when a shared store is down the classification still answers.
      const top = c.predictions[0].index;
      const kept = model.grid
        ? results.put({
            id,
            model: model.name,
            version: model.version,
            fingerprint: model.fingerprint,
            createdAt: ctx.now(),
            view: image.view,
            input: image.input,
            top,
          })
        : results.noteUnkept(id, model.name);
      await kept.catch((err: Error) => {
        ctx.metrics.storeErrors.inc({ op: 'put' });
        request.log.warn(`result ${id} not kept: ${err.message}`);
      });
      // the class maps made are kept with the result, so that GET /attention/:id does not make them again
      if (c.classMaps.length > 0) {
        const cache = mapCache(results, id, () => ctx.metrics.storeErrors.inc({ op: 'put' }));
        await Promise.all(c.classMaps.map(([k, v]) => cache.put(k, v)));
      }
      const layersMark = `\u0000layers:${id}`;
      let fullLayers: string | null = null;
      if (model.grid && attention === 'full') {
        refuseLargeFull(r.attentions!.length, r.heads, r.tokens);
        // written as JSON text by a drawing worker (docs/service.md: attention=full off the event loop)
        fullLayers = await ctx.draws.attentionJson(r.attentions!, r.heads, r.tokens, started + config.timeoutMs);
      }
      const attentionBody = attentionBodyOf(model, c, attention, layersMark);
      if (attentionBody) ctx.metrics.maps.inc({ model: model.name, method: attentionBody.method });
      const total = performance.now() - started;
      const body = {
        id,
        model: model.name,
        model_version: String(model.version),
        predictions: c.predictions,
        logits: Array.from(r.logits),
        ...(attentionBody ? { attention: attentionBody } : {}),
        image: { format: image.format, width: image.original.width, height: image.original.height },
        timings: {
          decode_ms: +(decoded - started).toFixed(3),
          queue_ms: +r.queueMs.toFixed(3),
          inference_ms: +r.inferenceMs.toFixed(3),
          total_ms: +total.toFixed(3),
          batch_size: r.batchSize,
        },
      };
      if (fullLayers === null) return body;
      // the layers' text goes in as the worker wrote it, in the place held for it (the schema's
      // serializer would write it again on the event loop)
      const text = JSON.stringify(body).replace(JSON.stringify(layersMark), () => fullLayers!);
      return reply.type('application/json; charset=utf-8').send(text);
    },
  );
}
