// The Kubernetes manifests, the KServe InferenceService and the compose file: every document parses,
// the Kubernetes objects validate against the API's schemas (kubernetes-models), and ports, probes and
// variables agree with the server (its flags, its drain time, routes that answer).

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseAllDocuments, parse } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { SERVE_ENV, loadServeConfig } from '../../server/config.js';
import { DRAIN_TIMEOUT_MS } from '../../server/http/server.js';
import { testApp } from '../helpers/server.js';
import { cp, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { PREDICT_FLAGS } from '../../bin/predict.js';
import { parseFlagsAndInputs } from '../../bin/cli-util.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const DIR = path.join(ROOT, 'deploy', 'kubernetes');

type Doc = { apiVersion: string; kind: string; metadata: { name: string }; spec: any };

async function documents(): Promise<Map<string, Doc>> {
  const docs = new Map<string, Doc>();
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(await readFile(path.join(DIR, file), 'utf8'))) {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      const doc = d.toJSON() as Doc;
      docs.set(`${doc.kind}/${doc.metadata.name}`, doc);
    }
  }
  return docs;
}

const MODELS: Record<string, new (d: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'batch/v1/Job': Job,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
};

/** The server's configuration from a container's env, as `vitrine serve` would read it. */
function configOf(env: { name: string; value?: string }[]) {
  const unknown = env.filter((e) => e.name.startsWith('VITRINE_') && !SERVE_ENV.includes(e.name));
  if (unknown.length) throw new Error(`unknown variables: ${unknown.map((e) => e.name).join(', ')}`);
  return loadServeConfig([], Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value])));
}

t.test('kubernetes: every document parses and validates against the API schemas', async (t) => {
  const docs = await documents();
  t.same([...docs.keys()].sort(), [
    'Deployment/redis',
    'Deployment/vitrine',
    'Deployment/vitrine-gpu',
    'HorizontalPodAutoscaler/vitrine',
    'InferenceService/vitrine',
    'Job/vitrine-predict',
    'PersistentVolumeClaim/vitrine-predict-data',
    'PodDisruptionBudget/vitrine',
    'Service/redis',
    'Service/vitrine',
    'Service/vitrine-gpu',
  ]);
  for (const [key, doc] of docs) {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    if (!Model) continue; // the InferenceService is a custom resource: checked below
    t.doesNotThrow(() => new Model(doc).validate(), `${key} validates`);
  }
  const broken = structuredClone(docs.get('Deployment/vitrine')!);
  broken.spec.template.spec.containers[0].ports[0].containerPort = '8080';
  t.throws(() => new Deployment(broken).validate(), /containerPort must be integer/, 'the validator does reject a bad manifest');
});

t.test('kubernetes: ports, probes, variables and the drain agree with the server', async (t) => {
  const docs = await documents();
  const app = await testApp(t);
  const deployment = docs.get('Deployment/vitrine')!;
  const pod = deployment.spec.template.spec;
  const [c] = pod.containers;
  const config = configOf(c.env);
  const http = c.ports.find((p: { name: string }) => p.name === 'http');
  t.equal(http.containerPort, config.port, 'the container port is the port the server listens on');
  const grpc = c.ports.find((p: { name: string }) => p.name === 'grpc');
  t.equal(grpc?.containerPort, config.grpcPort, 'the grpc container port is the one gRPC listens on');
  t.equal(config.resultsStore, 'redis://redis:6379/0');
  t.equal(config.workers * 1000, Number.parseFloat(c.resources.limits.cpu) * 1000, 'one worker per CPU of the limit');
  for (const [probe, path] of [
    ['startupProbe', '/readyz'],
    ['readinessProbe', '/readyz'],
    ['livenessProbe', '/healthz'],
  ] as const) {
    t.equal(c[probe].httpGet.path, path, `${probe} on ${path}`);
    t.equal(c[probe].httpGet.port, 'http');
    t.equal((await app.inject(path)).statusCode, 200, `${path} answers 200 on a ready server`);
  }
  const pause = Number(c.lifecycle.preStop.exec.command[1]);
  t.ok(
    pod.terminationGracePeriodSeconds * 1000 > pause * 1000 + DRAIN_TIMEOUT_MS,
    `grace ${pod.terminationGracePeriodSeconds} s > preStop ${pause} s + drain ${DRAIN_TIMEOUT_MS / 1000} s`,
  );
  t.equal(pod.securityContext.runAsNonRoot, true);
  t.equal(pod.securityContext.runAsUser, 1000, "the image's user node");
  t.ok(c.resources.requests && c.resources.limits, 'requests and limits');

  const service = docs.get('Service/vitrine')!;
  t.equal(service.spec.ports[0].targetPort, 'http');
  t.same(
    service.spec.ports.find((p: { name: string }) => p.name === 'grpc'),
    { name: 'grpc', port: 8081, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' },
    'the Service carries gRPC (h2c) too',
  );
  t.same(service.spec.selector, deployment.spec.selector.matchLabels, 'the Service selects the pods');
  t.same(docs.get('PodDisruptionBudget/vitrine')!.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  t.same(docs.get('HorizontalPodAutoscaler/vitrine')!.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vitrine' });

  const redis = docs.get('Service/redis')!;
  const url = new URL(config.resultsStore);
  t.equal(url.hostname, redis.metadata.name, 'the store URL names the Redis Service');
  t.equal(Number(url.port), redis.spec.ports[0].port);
  t.same(redis.spec.selector, docs.get('Deployment/redis')!.spec.selector.matchLabels);
});

t.test("kubernetes, GPU variant: one GPU a pod, the driver's Vulkan part asked for, the server's own settings", async (t) => {
  const docs = await documents();
  const deployment = docs.get('Deployment/vitrine-gpu')!;
  const pod = deployment.spec.template.spec;
  const [c] = pod.containers;
  const config = configOf(c.env.filter((e: { name: string }) => e.name !== 'NVIDIA_DRIVER_CAPABILITIES'));
  t.equal(config.device, 'auto', 'CUDA, else WebGPU on the GPU, else the CPU');
  t.equal(config.workers, 1, 'one worker: the WebGPU context is one per process');
  t.equal(c.resources.limits['nvidia.com/gpu'], '1');
  t.equal(c.resources.requests['nvidia.com/gpu'], '1');
  const caps = c.env.find((e: { name: string }) => e.name === 'NVIDIA_DRIVER_CAPABILITIES').value.split(',');
  t.ok(
    caps.includes('graphics') && caps.includes('compute'),
    `NVIDIA_DRIVER_CAPABILITIES ${caps.join(',')}: graphics mounts the Vulkan driver`,
  );
  t.ok(
    pod.tolerations.some((x: { key: string }) => x.key === 'nvidia.com/gpu'),
    'tolerates the GPU taint',
  );
  t.equal(c.image, 'vitrine:gpu');
  t.same(docs.get('Service/vitrine-gpu')!.spec.selector, deployment.spec.selector.matchLabels);
  t.notSame(
    deployment.spec.selector.matchLabels,
    docs.get('Deployment/vitrine')!.spec.selector.matchLabels,
    'the CPU Service does not select GPU pods',
  );
  const dockerfile = await readFile(path.join(ROOT, 'docker', 'Dockerfile.gpu'), 'utf8');
  t.match(dockerfile, /apt-get install [^\n]*libvulkan1/, 'the GPU image has the Vulkan loader');
  t.match(dockerfile, /NVIDIA_DRIVER_CAPABILITIES=[a-z,]*graphics/, "and asks for the driver's graphics part");
});

t.test('kserve: a custom predictor speaking protocol v2 on the port the server listens on', async (t) => {
  const docs = await documents();
  const app = await testApp(t);
  const isvc = docs.get('InferenceService/vitrine')!;
  t.equal(isvc.apiVersion, 'serving.kserve.io/v1beta1');
  const [c] = isvc.spec.predictor.containers;
  t.equal(c.name, 'kserve-container', "KServe's name for the predictor container");
  const config = configOf(c.env);
  t.equal(c.ports[0].containerPort, config.port);
  t.equal(config.resultsStore, 'redis://redis:6379/0');
  for (const probe of ['readinessProbe', 'livenessProbe']) {
    t.equal(c[probe].httpGet.port, config.port);
    t.equal((await app.inject(c[probe].httpGet.path)).statusCode, 200, `${probe} ${c[probe].httpGet.path} answers`);
  }
  t.ok(isvc.spec.predictor.minReplicas >= 1 && isvc.spec.predictor.maxReplicas >= isvc.spec.predictor.minReplicas);
});

t.test('compose: the scaled profile shares Redis, and the balancer config is mounted', async (t) => {
  const compose = parse(await readFile(path.join(ROOT, 'docker', 'compose.yaml'), 'utf8'), { merge: true });
  const replica = compose.services.replica;
  t.same(replica.profiles, ['scaled']);
  t.same(compose.services.vitrine.ports, ['8080:8080', '8081:8081'], 'HTTP and gRPC published');
  for (const file of ['Dockerfile', 'docker/Dockerfile.gpu']) {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    t.equal(loadServeConfig([], { VITRINE_GRPC_PORT: /VITRINE_GRPC_PORT=(\S+)/.exec(text)?.[1] }).grpcPort, 8081, `${file} turns gRPC on`);
    t.match(text, /^EXPOSE 8080 8081$/m, `${file} exposes both ports`);
    t.match(text, /^COPY proto proto$/m, `${file} ships the .proto the server loads`);
  }
  const env = Object.entries(replica.environment as Record<string, string>).map(([name, value]) => ({ name, value: String(value) }));
  const config = configOf(env);
  t.equal(new URL(config.resultsStore).hostname, 'redis');
  t.ok(compose.services.redis?.profiles.includes('scaled'), 'a redis service in the scaled profile');
  t.equal(replica.depends_on.redis.condition, 'service_healthy');
  t.ok(
    compose.services.lb.volumes.some((v: string) => v.startsWith('./nginx.conf:')),
    'nginx runs docker/nginx.conf',
  );
  const nginx = await readFile(path.join(ROOT, 'docker', 'nginx.conf'), 'utf8');
  t.notMatch(nginx, /^\s*hash /m, 'no client pinning');
});

t.test('predict job: an Indexed Job whose pods, run as Kubernetes runs them, cover the images once and merge', async (t) => {
  const docs = await documents();
  const job = docs.get('Job/vitrine-predict')!;
  const spec = job.spec;
  const pod = spec.template.spec;
  const [c] = pod.containers;
  t.equal(spec.completionMode, 'Indexed');
  t.equal(spec.completions, spec.parallelism, 'one pod per shard, all at once');
  t.equal(pod.restartPolicy, 'Never', 'backoffLimitPerIndex requires it');
  t.equal(
    c.name,
    spec.podFailurePolicy.rules.find((r: { action: string }) => r.action === 'FailIndex').onExitCodes.containerName,
    'the failure policy names the container',
  );
  t.equal(pod.securityContext.runAsUser, 1000, "the image's user node");
  t.equal(c.args[0], 'predict');
  const { values, positionals } = parseFlagsAndInputs(c.args.slice(1), PREDICT_FLAGS, '');
  t.equal(Number(values.shards), spec.completions, '--shards is the number of completions');
  t.ok(values.resume, 'a replaced pod resumes its shard');
  t.ok(existsSync(path.join(ROOT, 'models', values.model!, 'config.json')), `--model ${values.model} is a bundled model`);
  const mounts = c.volumeMounts as { name: string; mountPath: string }[];
  const claim = (p: string) => {
    const m = mounts.find((v) => p.startsWith(v.mountPath + '/'));
    return pod.volumes.find((v: { name: string }) => v.name === m?.name)?.persistentVolumeClaim?.claimName;
  };
  for (const p of [...positionals, values.out!]) t.equal(claim(p), 'vitrine-predict-data', `${p} is on the shared volume`);
  t.same(docs.get('PersistentVolumeClaim/vitrine-predict-data')!.spec.accessModes, ['ReadWriteMany']);

  // The pods: the container's arguments with /data on a temporary folder, JOB_COMPLETION_INDEX 0..N-1.
  const data = await tmpDir('vitrine-job-');
  const examples = path.join(ROOT, 'server', 'web', 'examples');
  for (const [i, f] of (await readdir(examples)).filter((f) => f.endsWith('.png')).entries()) {
    await mkdir(path.join(data, 'images', `part-${i % 3}`), { recursive: true });
    await cp(path.join(examples, f), path.join(data, 'images', `part-${i % 3}`, f));
  }
  const args = c.args.map((a: string) => a.replace(/^\/data\//, `${data}/`));
  for (let index = 0; index < spec.completions; index++) {
    const r = await runCli([...args, '--workers', '1'], { built: true, env: { JOB_COMPLETION_INDEX: String(index) } });
    t.equal(r.code, 0, `pod ${index}: ${r.stderr.trim().split('\n').at(-1)}`);
  }
  // the shards are drawn by a hash of each path, and the folder's name is random: retry the fullest
  const counts = await Promise.all(
    Array.from(
      { length: spec.completions },
      async (_, i) =>
        (await readFile(`${data}/results/predictions-${i + 1}-of-${spec.completions}.jsonl`, 'utf8')).split('\n').filter(Boolean).length,
    ),
  );
  const fullest = counts.indexOf(Math.max(...counts));
  const again = await runCli([...args, '--workers', '1'], { built: true, env: { JOB_COMPLETION_INDEX: String(fullest) } });
  t.match(
    again.stdout,
    new RegExp(`^0 images in .* ${counts[fullest]} done before`, 'm'),
    'a pod run again (a retried index) finds its shard done',
  );
  const merged = await runCli(['predict', '--merge', `${data}/results`], { built: true });
  t.equal(merged.code, 0, merged.stderr);
  const whole = await runCli(['predict', `${data}/images`, '--model', values.model!, '--out', `${data}/whole`, '--workers', '1'], {
    built: true,
  });
  t.equal(whole.code, 0, whole.stderr);
  // timings differ from run to run, and so may libvips's wording of an error
  const lines = async (f: string) =>
    (await readFile(f, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const r = JSON.parse(l);
        return JSON.stringify({ ...r, timings: undefined, error: r.error?.code });
      })
      .sort();
  const got = await lines(`${data}/results/predictions.jsonl`);
  t.equal(got.length, 10);
  t.same(got, await lines(`${data}/whole/predictions.jsonl`), 'the merge of the pods is the run of one machine');
});
