// Runs the service: listens (0.0.0.0:8080 by default), and on SIGTERM or SIGINT stops accepting,
// answers what is in flight, and exits 0.

import { existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { type GrpcServer, startGrpc } from '../grpc/server.js';
import type { ServeConfig } from '../config.js';
import type { WorkerPool } from '../engine/pool.js';
import { type Provider, describeSession } from '../../runtime/ort.js';

/** The most a shutdown waits for in-flight work before exiting anyway. */
export const DRAIN_TIMEOUT_MS = 30_000;

/** Why a port cannot be listened on, in a few words. */
function listenError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const message = (err as Error).message;
  if (code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(message)) return 'the address is already in use';
  if (code === 'EACCES' || /EACCES/.test(message)) return 'permission denied';
  if (code === 'EADDRNOTAVAIL' || /EADDRNOTAVAIL/.test(message)) return 'no such address on this machine';
  return message;
}

/** The gRPC binding of the app's service on `port` of the app's host (0: a free port), counted in its metrics. */
export async function listenGrpc(app: FastifyInstance, port: number): Promise<GrpcServer> {
  const { config, metrics } = app.vitrine;
  try {
    return await startGrpc(app.vitrine, {
      host: config.host,
      port,
      maxMessageBytes: config.bodyLimit,
      log: app.log,
      observe: (method, code, seconds) => {
        metrics.grpcRequests.inc({ method, code });
        metrics.grpcLatency.observe({ method }, seconds);
      },
    });
  } catch (err) {
    throw new Error(`cannot listen for gRPC on ${config.host}:${port}: ${listenError(err)}`);
  }
}

export async function serve(config: ServeConfig): Promise<void> {
  const app = await buildApp(config);
  let grpc: GrpcServer | null = null;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: draining and shutting down`);
    const force = setTimeout(() => {
      app.log.error(`shutdown took longer than ${DRAIN_TIMEOUT_MS / 1000} s; exiting`);
      process.exit(1);
    }, DRAIN_TIMEOUT_MS);
    force.unref();
    try {
      // gRPC's calls in flight are answered (the engine's close waits for them) as HTTP's are
      grpc?.beginDrain();
      await Promise.all([grpc?.drain(), app.close()]);
      process.exitCode = 0;
    } catch (err) {
      app.log.error({ err }, 'error while closing');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  let address: string;
  try {
    address = await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // Not listening means not serving: stop the workers so that the process exits with the error.
    await app.close().catch(() => {});
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${listenError(err)}`);
  }
  if (config.grpcPort !== null) {
    try {
      grpc = await listenGrpc(app, config.grpcPort);
    } catch (err) {
      await app.close().catch(() => {});
      throw err;
    }
    app.log.info(`gRPC (inference.GRPCInferenceService, grpc.health.v1.Health) on ${config.host}:${grpc.port}`);
  }
  const exposed = exposureWarning(config);
  if (exposed) app.log.warn(exposed);
  app.log.info(
    `vitrine serving ${app.vitrine.models.map((m) => m.name).join(', ')} ` +
      `on ${address} (${app.vitrine.pool.size} workers; ` +
      `${runsOn(app.vitrine.pool)})`,
  );
}

/** Which provider (and GPU) each model runs on, models that share one named together: `cpu: a, b`. */
function runsOn(pool: Pick<WorkerPool, 'providers' | 'deviceOf'>): string {
  const groups = new Map<string, string[]>();
  for (const name of Object.keys(pool.providers)) {
    const { provider, adapter } = pool.deviceOf(name);
    const key = adapter ? describeSession({ provider: provider as Provider, adapter }) : provider;
    groups.set(key, [...(groups.get(key) ?? []), name]);
  }
  return [...groups].map(([key, names]) => `${key}: ${names.join(', ')}`).join('; ');
}

/** Where a process runs in a container (Docker's and podman's marker files, Kubernetes' variables). */
export function inContainer(env: NodeJS.ProcessEnv = process.env, exists: (file: string) => boolean = existsSync): boolean {
  return exists('/.dockerenv') || exists('/run/.containerenv') || env.KUBERNETES_SERVICE_HOST !== undefined || env.container !== undefined;
}

/**
 * The line said at start where the service listens on every interface without an API key outside a
 * container. The default stays 0.0.0.0, which a container needs (and the quick start's page uses),
 * but on a laptop that is an open API on its network, and the user should hear it once.
 */
export function exposureWarning(config: Pick<ServeConfig, 'host' | 'apiKey'>, container = inContainer()): string | null {
  const everywhere = config.host === '0.0.0.0' || config.host === '::' || config.host === '';
  if (!everywhere || config.apiKey || container) return null;
  return (
    `listening on every interface (${config.host}) without an API key: ` +
    `anyone who can reach this machine can use the API; --host 127.0.0.1 ` +
    `keeps it to this machine, --api-key requires a key`
  );
}
