// The real server process: SIGTERM while requests are in flight answers them all, then exits 0. The
// batching delay is 10 s (the most it may be), so no request is answered before the SIGTERM: all
// twelve HTTP requests and four gRPC calls are in flight when it comes (the server's own gauges say
// so, and the test checks it).

import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/cli.js';
import { testImage, testModels } from '../helpers/server.js';
import { grpcClient, status } from '../helpers/grpc.js';
import { servingUrl, until } from '../helpers/wait.js';

t.test('SIGTERM drains in-flight requests and exits 0', async (t) => {
  const models = await testModels();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(ROOT, 'bin', 'vitrine.ts'),
      'serve',
      '--models',
      models,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--max-delay-ms',
      '10000',
      '--max-batch',
      '64',
      '--timeout-ms',
      '60000',
      '--workers',
      '1',
      '--grpc-port',
      '0',
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const serving = servingUrl(child, 'the server');
  const base = await serving.url;
  const img = await testImage();
  const requests = Array.from({ length: 12 }, () =>
    fetch(`${base}/classify`, { method: 'POST', body: img, headers: { 'content-type': 'image/png' } }).then((r) => r.status),
  );
  const grpcPort = Number(/gRPC .* on 127\.0\.0\.1:(\d+)/.exec(serving.log())?.[1]);
  t.ok(grpcPort > 0, `the log says the gRPC port (${grpcPort})`);
  const client = grpcClient(grpcPort);
  t.teardown(() => client.close());
  const calls = Array.from({ length: 4 }, () =>
    client
      .ModelInfer({
        model_name: 'vit-cifar10',
        inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [img] } }],
      })
      .then(
        () => 'OK',
        (e: { code: number }) => status[e.code],
      ),
  );
  // Until all twelve have reached the server (in flight, less this /metrics request).
  const received = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const answered = [...text.matchAll(/^vitrine_http_requests_total\{route="\/classify"[^}]*\} (\d+)/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
    const inFlight = Number(/^vitrine_http_requests_in_flight (\d+)/m.exec(text)?.[1] ?? 0) - 1;
    return { answered, inFlight };
  };
  let seen = await received();
  await until(
    'the twelve requests are in flight',
    async () => {
      seen = await received();
      return seen.answered + seen.inFlight >= 12;
    },
    60_000,
  );
  t.same(seen, { answered: 0, inFlight: 12 }, 'none answered, all twelve in flight at the SIGTERM');
  const queued = async () =>
    [...(await (await fetch(`${base}/metrics`)).text()).matchAll(/^vitrine_queue_depth\{[^}]*\} (\d+)/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
  await until('the four gRPC calls are queued beside them', async () => (await queued()) >= 16, 60_000);

  child.kill('SIGTERM');
  const statuses = await Promise.all(requests);
  t.same(statuses, new Array(12).fill(200), 'every in-flight request answered 200');
  t.same(await Promise.all(calls), new Array(4).fill('OK'), 'every gRPC call in flight answered OK');
  t.equal(await exited, 0, 'exit status 0');
  t.match(serving.log(), /SIGTERM: draining and shutting down/);
  await t.rejects(fetch(`${base}/healthz`), 'no longer listening');
});

t.test('listening on every interface without a key outside a container is said at start', async (t) => {
  const { exposureWarning, inContainer } = await import('../../server/http/server.js');
  t.match(
    exposureWarning({ host: '0.0.0.0', apiKey: null }, false),
    new RegExp(
      /^listening on every interface \(0\.0\.0\.0\) without an API key: .*--host 127\.0\.0\.1 /.source +
        /keeps it to this machine, --api-key requires a key$/.source,
    ),
  );
  t.equal(exposureWarning({ host: '0.0.0.0', apiKey: 'k' }, false), null, 'a key: nothing to say');
  t.equal(exposureWarning({ host: '127.0.0.1', apiKey: null }, false), null, 'loopback: nothing to say');
  t.equal(exposureWarning({ host: '0.0.0.0', apiKey: null }, true), null, 'in a container 0.0.0.0 is what it needs');
  t.ok(inContainer({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, () => false));
  t.ok(
    inContainer({}, (f) => f === '/run/.containerenv'),
    "podman's marker",
  );
  t.notOk(inContainer({}, () => false));
});
