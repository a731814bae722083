// A closed-loop gRPC load for bench:serve: `connections` callers, each sending its next ModelInfer as
// soon as the last is answered, for `seconds`; requests/s and latency percentiles as autocannon gives
// them for HTTP. As autocannon sends one prepared body and reads no answer, the request is encoded
// once and the answers are not decoded (the first one is, to check that it is an answer): what is
// measured is the server, not the client's protobuf work.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_OPTIONS, protoFile } from '../server/grpc/server.js';

export interface GrpcLoadResult {
  /** Calls answered during the load. */
  requests: number;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  first_error?: string;
}

const METHOD = '/inference.GRPCInferenceService/ModelInfer';

export async function grpcLoad(address: string, request: object, connections: number, seconds: number): Promise<GrpcLoadResult> {
  const definition = protoLoader.loadSync(protoFile(), PROTO_OPTIONS);
  const infer = (definition['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition).ModelInfer;
  const body = infer.requestSerialize(request);
  const same = (b: Buffer) => b;
  // one HTTP/2 connection per caller, as autocannon opens one TCP connection per connection
  const clients = Array.from(
    { length: connections },
    (_, i) => new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }),
  );
  const call = (client: grpc.Client) =>
    new Promise<{ error: string | null; answer?: Buffer }>((resolve) =>
      client.makeUnaryRequest(METHOD, same, same, body, { deadline: Date.now() + 30_000 }, (err, answer) =>
        resolve(err ? { error: `${grpc.status[err.code]}: ${err.details}` } : { error: null, answer }),
      ),
    );
  const warm = await Promise.all(clients.map((c) => call(c)));
  if (warm[0].error) throw new Error(`ModelInfer failed: ${warm[0].error}`);
  const first = infer.responseDeserialize(warm[0].answer!) as { outputs: unknown[] };
  if (!first.outputs?.length) throw new Error('ModelInfer answered without outputs');
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < end) {
        const start = performance.now();
        const { error } = await call(client);
        latencies.push(performance.now() - start);
        if (error) {
          errors++;
          firstError ??= error;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  const at = (p: number) => +latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(2);
  return {
    requests: latencies.length,
    requests_per_s: Math.round(latencies.length / elapsed),
    p50_ms: at(50),
    p99_ms: at(99),
    errors,
    ...(firstError ? { first_error: firstError } : {}),
  };
}
