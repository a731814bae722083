// The service's errors as gRPC status codes: each ServiceError (errors.ts) keeps its message and gets
// the code a gRPC client expects for its HTTP status (a full queue is RESOURCE_EXHAUSTED, a server
// starting or draining UNAVAILABLE); anything else is INTERNAL with no detail.

import { status } from '@grpc/grpc-js';
import { ServiceError } from '../errors.js';

const BY_HTTP: Record<number, status> = {
  400: status.INVALID_ARGUMENT,
  401: status.UNAUTHENTICATED,
  403: status.PERMISSION_DENIED,
  404: status.NOT_FOUND,
  408: status.DEADLINE_EXCEEDED,
  410: status.NOT_FOUND,
  // an image over the pixel limit, or of a type not decoded: the argument's fault
  413: status.INVALID_ARGUMENT,
  415: status.INVALID_ARGUMENT,
  422: status.FAILED_PRECONDITION,
  500: status.INTERNAL,
  501: status.UNIMPLEMENTED,
  504: status.DEADLINE_EXCEEDED,
};

export interface GrpcError {
  code: status;
  details: string;
}

/** A thrown error as the status a call ends with; `internal` hears of the errors that are not ours. */
export function toStatus(err: unknown, internal: (err: unknown) => void): GrpcError {
  if (err instanceof ServiceError) {
    if (err.statusCode === 503)
      return { code: err.code === 'VIT_OVERLOADED' ? status.RESOURCE_EXHAUSTED : status.UNAVAILABLE, details: err.message };
    return { code: BY_HTTP[err.statusCode] ?? (err.statusCode < 500 ? status.INVALID_ARGUMENT : status.INTERNAL), details: err.message };
  }
  internal(err);
  return { code: status.INTERNAL, details: 'internal error' };
}

/** The address of a call's peer, from grpc-js' `<address>:<port>` ("127.0.0.1:5000", "::1:5000"), and
 *  the bracketed and prefixed forms other gRPC libraries write ("ipv6:[::1]:5000"). */
export function peerAddress(peer: string): string {
  return /^(?:ipv[46]:)?\[?(.+?)\]?:\d+$/.exec(peer)?.[1] ?? peer;
}
