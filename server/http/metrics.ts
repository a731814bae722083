// Prometheus metrics (prom-client), one registry per app: HTTP requests by route and status, gRPC calls
// by method and code, their latency, batch sizes, queue depth, decodes, inference time, the provider in
// use, and the process's own figures.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Something with tasks running and waiting (a gate, the heatmap workers). */
interface Queued {
  running: number;
  queued: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'vitrine_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'vitrine_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly grpcRequests = new Counter({
    name: 'vitrine_grpc_requests_total',
    help: 'gRPC calls by method and status code',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly grpcLatency = new Histogram({
    name: 'vitrine_grpc_request_duration_seconds',
    help: 'gRPC call latency by method',
    labelNames: ['method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'vitrine_http_requests_in_flight',
    help: 'HTTP requests received and not yet answered',
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'vitrine_batch_size',
    help: 'Requests per inference batch',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'vitrine_queue_depth',
    help: 'Requests waiting for an inference worker',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly inference = new Histogram({
    name: 'vitrine_inference_duration_seconds',
    help: 'ONNX Runtime time per batch',
    labelNames: ['model'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly provider = new Gauge({
    name: 'vitrine_provider_info',
    help: 'Execution provider in use per model (value 1)',
    labelNames: ['model', 'provider', 'adapter', 'software'] as const,
    registers: [this.registry],
  });
  readonly modelVersion = new Gauge({
    name: 'vitrine_model_version',
    help: 'The version of each model serving (absent once unloaded)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly modelLoads = new Counter({
    name: 'vitrine_model_loads_total',
    help: 'Loads, reloads and unloads while serving, by model and result (loaded, failed, unloaded)',
    labelNames: ['model', 'result'] as const,
    registers: [this.registry],
  });
  readonly workers = new Gauge({ name: 'vitrine_workers_ready', help: 'Inference workers ready', registers: [this.registry] });
  readonly maps = new Counter({
    name: 'vitrine_attention_maps_total',
    help: 'Attention maps served (GET /attention and inline in /classify) by model and method',
    labelNames: ['model', 'method'] as const,
    registers: [this.registry],
  });
  readonly workerRestarts = new Counter({
    name: 'vitrine_worker_restarts_total',
    help: 'Inference workers replaced after dying',
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({
    name: 'vitrine_results_store_up',
    help: 'Whether the shared results store (Redis) is connected (1) or not (0); absent with the memory store',
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'vitrine_results_store_errors_total',
    help: 'Results store operations that failed, by operation',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });
  /** Where the decodes gauge reads from when scraped (the app's decode gate). */
  decodeSource: Queued | null = null;
  readonly decodes = this.queuedGauge(
    'vitrine_decodes',
    'Images sharp is decoding (state=running) or that wait for a decode slot (state=waiting)',
    () => this.decodeSource,
  );
  /** Where the draws gauge reads from (the heatmap workers). */
  drawSource: Queued | null = null;
  readonly draws = this.queuedGauge(
    'vitrine_heatmap_draws',
    'Heatmaps being drawn in the heatmap workers (state=running) or waiting for one (state=waiting)',
    () => this.drawSource,
  );

  /** A gauge of what runs and what waits, read from `source` when scraped. */
  private queuedGauge(name: string, help: string, source: () => Queued | null): Gauge<'state'> {
    const gauge: Gauge<'state'> = new Gauge({
      name,
      help,
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect: () => {
        gauge.set({ state: 'running' }, source()?.running ?? 0);
        gauge.set({ state: 'waiting' }, source()?.queued ?? 0);
      },
    });
    return gauge;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vitrine_' });
  }
}
