// The gRPC server: inference.GRPCInferenceService (service.ts) and the standard grpc.health.v1.Health
// (for Kubernetes' gRPC probes) on one port, beside the HTTP server and on the same engine. Every
// call is checked the same way before it runs — refused UNAVAILABLE while draining, UNAUTHENTICATED
// without the API key (metadata `authorization: Bearer <key>`), and the repository's RPCs with the
// admin token or from this machine — then answered with its result or its error's status, counted
// and logged. Messages are at most the HTTP body limit.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { Errors } from '../errors.js';
import { bearerMatches, isLoopback } from '../auth.js';
import { type GrpcContext, type Rpc, inferenceService } from './service.js';
import { peerAddress, toStatus } from './status.js';

export const SERVICE_NAME = 'inference.GRPCInferenceService';

/** proto/grpc_predict_v2.proto, found from the sources (server/grpc) and the build (dist/server/grpc). */
export function protoFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, '..', '..', 'proto'), path.join(here, '..', '..', '..', 'proto')].map((d) =>
    path.join(d, 'grpc_predict_v2.proto'),
  );
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

/** How the protocol's messages are loaded (snake_case names, int64 as numbers, defaults, oneof names):
 *  the shape messages.ts reads; clients in tests and benches load it the same way. */
export const PROTO_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** Marks a request whose bytes do not parse as its message, with the parser's words. */
const MALFORMED = Symbol('malformed');

/**
 * The protocol's service definition, messages as the handlers read them (snake_case, numbers,
 * defaults). A request that does not parse reaches its handler marked MALFORMED, to be answered
 * INVALID_ARGUMENT: grpc-js would answer a failed parse INTERNAL, the server's fault, not the client's.
 */
export function loadProtocol(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(protoFile(), PROTO_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } };
  };
  const service = loaded.inference.GRPCInferenceService.service;
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => [
      name,
      {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          try {
            return method.requestDeserialize(bytes);
          } catch (err) {
            return { [MALFORMED]: (err as Error).message };
          }
        },
      },
    ]),
  );
}

export interface GrpcOptions {
  host: string;
  port: number;
  /** The largest message received, in bytes (the HTTP body limit). */
  maxMessageBytes: number;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  /** Told of every call answered: its RPC, status code name and seconds. */
  observe?: (rpc: string, code: string, seconds: number) => void;
}

export interface GrpcServer {
  /** The port bound (the one asked, or the one chosen for port 0). */
  port: number;
  /** Refuses new calls (UNAVAILABLE) and says NOT_SERVING to health checks from now on. */
  beginDrain(): void;
  /** Drains: the calls in flight are answered, then the server closes. */
  drain(): Promise<void>;
}

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v, k]),
);

export async function startGrpc(ctx: GrpcContext, opts: GrpcOptions): Promise<GrpcServer> {
  let draining = false;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': -1,
    // a client's streams on one connection; each message is at most maxMessageBytes
    'grpc.max_concurrent_streams': 64,
  });

  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  let serving: ServingStatus = 'NOT_SERVING';
  const checkHealth = () => {
    const now: ServingStatus = ctx.pool.ready && !ctx.closing() && !draining ? 'SERVING' : 'NOT_SERVING';
    if (now === serving) return;
    serving = now;
    for (const name of ['', SERVICE_NAME]) health.setStatus(name, now);
  };
  checkHealth();
  const watch = setInterval(checkHealth, 500);
  watch.unref();
  health.addToServer(server);

  const admitted = (name: string, rpc: Rpc, call: grpc.ServerUnaryCall<unknown, unknown>): void => {
    if ((draining || ctx.closing()) && !rpc.whileDraining) throw Errors.notReady('the server is shutting down');
    const malformed = (call.request as { [MALFORMED]?: string })[MALFORMED];
    if (malformed !== undefined) throw Errors.badRequest(`the message does not parse as a ${name}Request: ${malformed}`);
    const authorization = call.metadata.get('authorization')[0];
    const header = typeof authorization === 'string' ? authorization : authorization?.toString('utf8');
    if (rpc.access === 'api' && ctx.config.apiKey && !bearerMatches(header, ctx.config.apiKey))
      throw Errors.unauthorized('missing or wrong API key: send metadata authorization: Bearer <key>');
    if (rpc.access === 'admin') {
      const token = ctx.config.adminToken;
      if (token === null && !isLoopback(peerAddress(call.getPeer())))
        throw Errors.forbidden('the repository RPCs answer only this machine without --admin-token; set one to manage models remotely');
      if (token !== null && !bearerMatches(header, token))
        throw Errors.unauthorized('the repository RPCs need metadata authorization: Bearer <the admin token>');
    }
  };

  const rpcs = inferenceService(ctx, () => draining);
  const handlers = Object.fromEntries(
    Object.entries(rpcs).map(([name, rpc]) => [
      name,
      (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const started = performance.now();
        const deadline = call.getDeadline();
        const until = deadline instanceof Date ? deadline.getTime() - Date.now() : deadline;
        const answered = (async () => {
          admitted(name, rpc, call);
          return rpc.run(call.request as never, started + Math.min(ctx.config.timeoutMs, Math.max(0, until)));
        })();
        ctx.work.add(answered);
        answered
          .then(
            (response) => {
              callback(null, response);
              return grpc.status.OK;
            },
            (err: unknown) => {
              const e = toStatus(err, (internal) => opts.log.error({ err: internal, rpc: name }, 'unhandled error'));
              callback(e);
              return e.code;
            },
          )
          .then((code) => {
            ctx.work.delete(answered);
            const seconds = (performance.now() - started) / 1000;
            opts.observe?.(name, CODE_NAMES[code], seconds);
            opts.log.info({ rpc: name, code: CODE_NAMES[code], ms: +(seconds * 1000).toFixed(2) }, 'grpc call');
          });
      },
    ]),
  );
  server.addService(loadProtocol(), handlers);

  const address = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );

  const beginDrain = () => {
    draining = true;
    checkHealth();
  };
  let drained: Promise<void> | null = null;
  const drain = async () => {
    beginDrain();
    clearInterval(watch);
    await Promise.allSettled([...ctx.work]);
    // health watches stream until cancelled: what is not done within a second is cut
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 1000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  };
  return {
    port,
    beginDrain,
    drain: () => (drained ??= drain()),
  };
}
