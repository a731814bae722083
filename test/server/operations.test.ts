import t from 'tap';
import { testApp, testImage } from '../helpers/server.js';

t.test('health, readiness, models, metrics, docs and the page', async (t) => {
  const app = await testApp(t);
  t.same((await app.inject('/healthz')).json(), { status: 'ok' });
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), {
    status: 'ready',
    workers: 1,
    ready_workers: 1,
    models: ['plain', 'vit-cifar10'],
    devices: { plain: { provider: 'cpu', adapter: null }, 'vit-cifar10': { provider: 'cpu', adapter: null } },
    results_store: { kind: 'memory', state: 'ready' },
  });

  const models = (await app.inject('/models')).json();
  t.equal(models.default, 'vit-cifar10');
  const vit = models.models.find((m: { name: string }) => m.name === 'vit-cifar10');
  t.same(vit.input, {
    name: 'pixel_values',
    shape: ['batch', 3, 32, 32],
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    fit: 'cover',
    resample: 'area',
    rescale: 1 / 255,
  });
  t.same(vit.outputs.attentions, ['attentions.0', 'attentions.1', 'attentions.2', 'attentions.3']);
  t.equal(vit.provider, 'cpu');
  t.equal(vit.adapter, null, 'no GPU adapter on the CPU');
  t.equal(vit.labels.length, 10);

  await app.inject({ method: 'POST', url: '/classify', payload: await testImage(), headers: { 'content-type': 'image/png' } });
  await app.inject({ method: 'POST', url: '/classify', payload: 'nope', headers: { 'content-type': 'image/png' } });
  const metrics = await app.inject('/metrics');
  t.equal(metrics.statusCode, 200);
  t.match(metrics.headers['content-type'], /text\/plain/);
  const text = metrics.body;
  t.match(text, /vitrine_http_requests_total\{route="\/classify",method="POST",status="200"\} 1/);
  t.match(text, /vitrine_http_requests_total\{route="\/classify",method="POST",status="415"\} 1/);
  t.match(text, /vitrine_http_request_duration_seconds_bucket\{le="[\d.]+",route="\/classify"\}/);
  t.match(text, /vitrine_batch_size_count\{model="vit-cifar10"\} 1/);
  t.match(text, /vitrine_queue_depth\{model="vit-cifar10"\} 0/);
  t.match(text, /vitrine_inference_duration_seconds_count\{model="vit-cifar10"\} 1/);
  t.match(text, /vitrine_provider_info\{model="vit-cifar10",provider="cpu",adapter="",software=""\} 1/);
  t.match(text, /vitrine_workers_ready 1/);
  t.match(text, /vitrine_decodes\{state="running"\} 0/);
  t.match(text, /vitrine_decodes\{state="waiting"\} 0/);
  t.match(text, /vitrine_process_cpu_seconds_total/);

  const spec = await app.inject('/docs/json');
  t.equal(spec.statusCode, 200);
  t.ok(spec.json().paths['/classify'] && spec.json().paths['/attention/{id}'], 'OpenAPI lists the routes');
  const body = spec.json().paths['/classify'].post.requestBody;
  t.same(
    body?.content?.['multipart/form-data']?.schema?.properties?.image,
    { type: 'string', format: 'binary', description: 'the image file' },
    '/classify documents its upload',
  );
  t.ok(body?.content?.['image/*'], 'and the raw image body');
  t.equal((await app.inject('/docs')).statusCode < 400, true, '/docs serves the UI');

  const page = await app.inject('/');
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /text\/html/);
  t.match(page.body, /<title>vitrine/);
  t.equal((await app.inject('/app.js')).statusCode, 200);
  t.equal((await app.inject('/examples/cat.png')).headers['content-type'], 'image/png');
});
