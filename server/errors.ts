// Every error the service answers with has a name, an HTTP status and one JSON shape:
// { error: <HTTP reason>, code: <VIT_…>, message: <what went wrong, for a person> }.

import { STATUS_CODES } from 'node:http';

export class ServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

type Make = (message: string, headers?: Record<string, string>) => ServiceError;
const define =
  (code: string, status: number): Make =>
  (message, headers) =>
    new ServiceError(code, message, status, headers);

export const Errors = Object.freeze({
  badRequest: define('VIT_BAD_REQUEST', 400),
  badImage: define('VIT_BAD_IMAGE', 400),
  unauthorized: define('VIT_UNAUTHORIZED', 401),
  forbidden: define('VIT_FORBIDDEN', 403),
  notFound: define('VIT_NOT_FOUND', 404),
  unknownModel: define('VIT_UNKNOWN_MODEL', 404),
  unknownResult: define('VIT_UNKNOWN_RESULT', 404),
  unreadableResult: define('VIT_RESULT_UNREADABLE', 410),
  resultGone: define('VIT_RESULT_GONE', 410),
  tooLarge: define('VIT_PAYLOAD_TOO_LARGE', 413),
  unsupportedMedia: define('VIT_UNSUPPORTED_MEDIA', 415),
  noAttention: define('VIT_NO_ATTENTION', 422),
  internal: define('VIT_INTERNAL', 500),
  workerFailed: define('VIT_WORKER_FAILED', 500),
  notImplemented: define('VIT_NOT_IMPLEMENTED', 501),
  overloaded: define('VIT_OVERLOADED', 503),
  notReady: define('VIT_NOT_READY', 503),
  storeUnavailable: define('VIT_STORE_UNAVAILABLE', 503),
  timeout: define('VIT_TIMEOUT', 504),
});

/** What turns a model served without maps into one with them: said in the 422s and the start-up log. */
export const IMPORT_HINT =
  'vitrine import <its model.onnx or folder> --out <dir> writes a folder with attention outputs and a relevance graph';

/** The refusals of a map a model cannot give, worded once for every route. */
export const Refusals = Object.freeze({
  noMaps: (model: string, why = 'has no attention outputs') =>
    Errors.noAttention(`model ${model} ${why}, so it gives no maps: ${IMPORT_HINT}`),
  noRelevance: (model: string) =>
    Errors.noAttention(
      `model ${model} has no relevance graph: its config.json declares no ` +
        `'relevance' (vitrine export and vitrine import write ` +
        `onnx/relevance.onnx)`,
    ),
  noInputGradient: (model: string, method = 'grad-input') =>
    Errors.noAttention(
      `model ${model}'s relevance graph gives no input gradient (written ` +
        `before it was added): export or import the model again for ${method}`,
    ),
});

export interface ErrorBody {
  error: string;
  code: string;
  message: string;
}

export function errorBody(status: number, code: string, message: string): ErrorBody {
  return { error: STATUS_CODES[status] ?? 'Error', code, message };
}

export const ERROR_SCHEMA = {
  type: 'object',
  required: ['error', 'code', 'message'],
  properties: { error: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
} as const;
