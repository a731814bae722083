// The service's HTTP conventions: one error shape for everything (validation, size, type, 404 and
// 405 included), API-key checks, and what the OpenAPI document says of POST /classify's body.

import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { Errors, ServiceError, errorBody } from '../errors.js';

const binary = { type: 'string', format: 'binary' };
export const CLASSIFY_REQUEST_BODY = {
  required: true,
  description:
    'The image: a multipart form with the file in field `image`, or the ' +
    'raw bytes (PNG, JPEG, WebP, GIF, AVIF, TIFF; the format is sniffed).',
  content: {
    'multipart/form-data': {
      schema: { type: 'object', properties: { image: { ...binary, description: 'the image file' } }, required: ['image'] },
    },
    'image/*': { schema: binary },
    'application/octet-stream': { schema: binary },
  },
};

/** Any error a route throws (ours, Fastify's validation, body size and type) as one ServiceError;
 *  the service's handler and the Open Inference Protocol's each answer it in their own shape. */
export function toServiceError(err: FastifyError | ServiceError, request: FastifyRequest, bodyLimit: number): ServiceError {
  if (err instanceof ServiceError) return err;
  if (err.validation) {
    const v = err.validation[0];
    const params = v?.params as { allowedValues?: unknown[]; additionalProperty?: string } | undefined;
    const allowed = params?.allowedValues;
    if (v?.keyword === 'additionalProperties' && params?.additionalProperty) {
      // name the stray parameter and what this route takes
      const schema = request.routeOptions.schema?.[err.validationContext === 'querystring' ? 'querystring' : 'params'] as
        | { properties?: Record<string, unknown> }
        | undefined;
      const known = Object.keys(schema?.properties ?? {});
      return Errors.badRequest(
        `unknown ` +
          `${err.validationContext === 'querystring' ? 'query parameter' : 'parameter'} ` +
          `'${params.additionalProperty}'${known.length ? ` (accepted: ${known.join(', ')})` : ''}`,
      );
    }
    return Errors.badRequest(
      (
        `${err.validationContext ?? 'request'} ${v?.instancePath ?? ''} ` +
        `${v?.message ?? err.message}${allowed ? `: ${allowed.join(', ')}` : ''}`
      )
        .replace(/\s+/g, ' ')
        .trim(),
    );
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413)
    return Errors.tooLarge(`the body is larger than ${bodyLimit} bytes`);
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.statusCode === 415)
    return Errors.unsupportedMedia(
      `unsupported content type '${request.headers['content-type'] ?? ''}': ` +
        `send multipart/form-data (field image) or the raw image with an ` +
        `image/* type`,
    );
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (err.statusCode && err.statusCode >= 400 && err.statusCode < 500))
    return new ServiceError('VIT_BAD_REQUEST', err.message, err.statusCode ?? 400);
  request.log.error({ err }, 'unhandled error');
  return Errors.internal('internal error');
}

/** The error handler and the not-found handler every route of the service answers through. */
export function errorHandling(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError | ServiceError, request, reply) => {
    const e = toServiceError(err, request, bodyLimit);
    if (e.statusCode >= 500) request.log.warn({ code: e.code, url: request.url }, e.message);
    return reply
      .code(e.statusCode)
      .headers(e.headers)
      .send(errorBody(e.statusCode, e.code, e.message));
  });
  app.setNotFoundHandler((request, reply) => {
    const url = request.url.split('?')[0];
    // a known path asked with the wrong method: 405 with the methods it takes
    const methods = (['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const).filter(
      (m) => m !== request.method && app.hasRoute({ method: m, url }),
    );
    if (methods.length > 0)
      return reply
        .code(405)
        .header('allow', methods.join(', '))
        .send(errorBody(405, 'VIT_METHOD_NOT_ALLOWED', `${request.method} ${url} is not served: use ${methods.join(' or ')}`));
    return reply.code(404).send(errorBody(404, 'VIT_NOT_FOUND', `no route ${request.method} ${url}`));
  });
}
