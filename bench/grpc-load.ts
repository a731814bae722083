// A closed-loop gRPC load for bench:serve: `connections` callers over one channel each, every caller
// sending its next ModelInfer as soon as the last is answered, for `seconds`; requests/s and latency
// percentiles as autocannon reports them for HTTP.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoFile } from '../server/grpc/server.js';

export interface GrpcLoadResult {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  first_error?: string;
}

type Stub = grpc.Client & { ModelInfer: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void };

export async function grpcLoad(address: string, request: object, connections: number, seconds: number): Promise<GrpcLoadResult> {
  const definition = protoLoader.loadSync(protoFile(), { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: new (address: string, creds: grpc.ChannelCredentials, options?: object) => Stub };
  };
  // one HTTP/2 connection per caller, as autocannon opens one TCP connection per connection
  const stubs = Array.from(
    { length: connections },
    (_, i) => new pkg.inference.GRPCInferenceService(address, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }),
  );
  const call = (stub: Stub) =>
    new Promise<string | null>((resolve) =>
      stub.ModelInfer(request, { deadline: Date.now() + 30_000 }, (err) =>
        resolve(err ? `${grpc.status[err.code]}: ${err.details}` : null),
      ),
    );
  await Promise.all(stubs.map((s) => call(s))); // connected and warm
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    stubs.map(async (stub) => {
      while (performance.now() < end) {
        const start = performance.now();
        const err = await call(stub);
        latencies.push(performance.now() - start);
        if (err) {
          errors++;
          firstError ??= err;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  for (const s of stubs) s.close();
  latencies.sort((a, b) => a - b);
  const at = (p: number) => +latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(2);
  return {
    requests_per_s: Math.round(latencies.length / elapsed),
    p50_ms: at(50),
    p99_ms: at(99),
    errors,
    ...(firstError ? { first_error: firstError } : {}),
  };
}
