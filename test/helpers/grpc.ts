// A gRPC client of the Open Inference Protocol (the same proto/ file and library as the server), and
// an app serving it on a free port.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { buildApp } from '../../server/http/app.js';
import { listenGrpc } from '../../server/http/server.js';
import type { GrpcServer } from '../../server/grpc/server.js';
import { PROTO_OPTIONS, protoFile } from '../../server/grpc/server.js';
import { protoPath as healthProto } from 'grpc-health-check';
import type { ServeConfig } from '../../server/config.js';
import { testConfig } from './server.js';

type Call = (request: object, metadata?: Record<string, string>, deadlineMs?: number) => Promise<Record<string, any>>;
export type Client = Record<string, Call> & {
  close(): void;
  raw(method: string, bytes: Buffer): Promise<Buffer>;
  encode(method: string, request: object): Buffer;
};

/** A client of `inference.GRPCInferenceService` (and `grpc.health.v1.Health`'s Check as `HealthCheck`)
 *  at 127.0.0.1:port; each RPC a promise that rejects with the gRPC error (its code and details). */
export function grpcClient(port: number): Client {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile(), PROTO_OPTIONS)) as any;
  const address = `127.0.0.1:${port}`;
  const stub = new pkg.inference.GRPCInferenceService(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
  const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, PROTO_OPTIONS)) as any;
  const health = new healthPkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  const promised =
    (target: any, method: string): Call =>
    (request, metadata = {}, deadlineMs = 30_000) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(metadata)) md.set(k, v);
        target[method](request, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: any) =>
          err ? reject(err) : resolve(res),
        );
      });
  const methods = Object.keys(pkg.inference.GRPCInferenceService.service);
  const client = Object.fromEntries(methods.map((m) => [m, promised(stub, m)])) as Client;
  client.HealthCheck = promised(health, 'Check');
  // a call whose message is whatever bytes are given: what a broken or hostile client sends
  const generic = new grpc.Client(address, grpc.credentials.createInsecure());
  client.raw = (method, bytes) =>
    new Promise((resolve, reject) =>
      generic.makeUnaryRequest(
        `/inference.GRPCInferenceService/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
  client.encode = (method, request) => pkg.inference.GRPCInferenceService.service[method].requestSerialize(request);
  client.close = () => {
    stub.close();
    health.close();
    generic.close();
  };
  return client;
}

/** An app (testConfig's models and settings, with `over`) serving gRPC on a free port, and a client of it;
 *  both stopped when the test ends (the gRPC server drained first, as `vitrine serve` does). */
export async function grpcApp(
  t: Test,
  over: Partial<ServeConfig> = {},
): Promise<{ app: FastifyInstance; server: GrpcServer; client: Client }> {
  const app = await buildApp(await testConfig({ host: '127.0.0.1', ...over }), { logger: false });
  const server = await listenGrpc(app, 0);
  const client = grpcClient(server.port);
  t.teardown(async () => {
    client.close();
    server.beginDrain();
    await Promise.all([server.drain(), app.close()]);
  });
  return { app, server, client };
}

/** The gRPC error a promise rejects with (a failure of the test when it resolves). */
export async function grpcError(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded where an error was expected');
}

export { status } from '@grpc/grpc-js';
