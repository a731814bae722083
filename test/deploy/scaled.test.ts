// The scaled topology of docker/compose.yaml without containers: three `vitrine serve` processes
// sharing a real redis-server, behind Debian's nginx running docker/nginx.conf (its upstream pointed
// at the local ports). Classifies through the balancer, fetches the heatmap until every replica has
// answered, kills a replica, fetches again. .ci/run installs redis-server and nginx.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { serveOnFreePort } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { freePort, startRedis } from '../helpers/redis.js';
import { testWith } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** docker/nginx.conf, its upstream pointed at local ports (Docker's resolver and `resolve` dropped). */
async function nginxConfig(dir: string, listen: number, upstreams: number[]): Promise<string> {
  const site = await readFile(path.join(ROOT, 'docker', 'nginx.conf'), 'utf8');
  if (!/server replica:8080 resolve[^;]*;/.test(site) || !/listen 80;/.test(site))
    throw new Error('docker/nginx.conf changed: update this test');
  const local = site
    .replace(/^resolver .*$/m, '')
    .replace(/server replica:8080 resolve([^;]*);/, upstreams.map((p) => `server 127.0.0.1:${p}$1;`).join('\n    '))
    .replace('listen 80;', `listen 127.0.0.1:${listen};`);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, d), { recursive: true });
  const conf =
    `daemon off;\npid ${dir}/nginx.pid;\nerror_log stderr warn;\nevents { ` +
    `worker_connections 256; }\nhttp {\n  access_log off;\n  ` +
    `client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; ` +
    `fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; ` +
    `scgi_temp_path ${dir}/scgi;\n${local}\n}\n`;
  const file = path.join(dir, 'nginx.conf');
  await writeFile(file, conf);
  return file;
}

/** Stops the process when the test ends (nginx with SIGTERM, so that its master stops its workers), and waits. */
function stopOnTeardown(t: Test, child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL') {
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  });
}

testWith(t, 'scaled: replicas behind round-robin nginx share results through Redis', ['redis-server', 'nginx'], async (t) => {
  const redis = await startRedis(t);
  const replicas = await Promise.all(
    [0, 1, 2].map(() => serveOnFreePort(['--workers', '1', '--decoders', '1', '--results-store', redis.url])),
  );
  for (const r of replicas) stopOnTeardown(t, r.child);
  const ports = replicas.map((r) => r.port);
  for (const port of ports)
    await until(
      `replica :${port} is ready`,
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
      120_000,
    );

  // nginx binds the port it is given: where another process took it between, another is tried
  const dir = await tmpDir('vitrine-nginx-');
  let lb = '';
  for (let tries = 1; !lb; tries++) {
    const lbPort = await freePort();
    const nginx = spawn('nginx', ['-p', dir, '-c', await nginxConfig(dir, lbPort, ports)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let nginxErr = '';
    nginx.stderr!.on('data', (d: Buffer) => (nginxErr += d.toString()));
    stopOnTeardown(t, nginx, 'SIGTERM');
    const up = await until(
      'nginx answers',
      async () => {
        if (nginx.exitCode !== null) throw new Error(`nginx exited: ${nginxErr}`);
        return (await fetch(`http://127.0.0.1:${lbPort}/healthz`).catch(() => null))?.status === 200;
      },
      20_000,
    ).then(
      () => true,
      (e: Error) => {
        if (tries < 5 && /already in use/.test(nginxErr)) return false;
        throw new Error(`${e.message}: ${nginxErr}`);
      },
    );
    if (up) lb = `http://127.0.0.1:${lbPort}`;
  }

  const cat = await readFile(path.join(ROOT, 'server', 'web', 'examples', 'cat.png'));
  const classified = await fetch(`${lb}/classify`, { method: 'POST', body: cat, headers: { 'content-type': 'image/png' } });
  t.equal(classified.status, 200);
  const { id } = (await classified.json()) as { id: string };

  const answered = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const res = await fetch(`${lb}/attention/${id}`);
    t.equal(res.status, 200, `fetch ${i} through the balancer`);
    t.equal(res.headers.get('content-type'), 'image/png');
    answered.add(res.headers.get('x-upstream') ?? '?');
    await res.arrayBuffer();
  }
  t.same([...answered].sort(), ports.map((p) => `127.0.0.1:${p}`).sort(), 'every replica answered for the one result');

  replicas[0].child.kill('SIGKILL');
  await until('the killed replica is gone', () => replicas[0].child.exitCode !== null || replicas[0].child.signalCode !== null);
  for (let i = 0; i < 6; i++) {
    const res = await fetch(`${lb}/attention/${id}?format=json`);
    t.equal(res.status, 200, `after the kill, fetch ${i}`);
    const last = res.headers.get('x-upstream')?.split(', ').pop();
    t.not(last, `127.0.0.1:${ports[0]}`, `answered by a live replica (${res.headers.get('x-upstream')})`);
    await res.arrayBuffer();
  }
});
