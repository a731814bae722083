// The service under hostile traffic, its memory watched: `vitrine serve` on the bundled models, then
// for --seconds each, one after the other: (1) map variants, 16 clients asking one kept result for
// ever new maps (discard=<i>e-9, head=<n> written with 8,000 leading zeros); (2) stalled uploads, 40
// connections that declare 10 MB, send 5 MB and stop (a new one for each the server closes); (3)
// pipelining, 8 connections sending 20,000 GET /docs/json without reading (a new one for each the
// server closes). The server's RSS is read from /proc every 250 ms; one JSON line per phase: RSS at
// its start, its largest, at its end, and after 5 s idle. Linux only.
//   npx tsx bench/soak.ts [--seconds 60] [--models models] [--root DIR: serve that checkout's build, to compare]

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { waitReady } from './ready.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    models: { type: 'string', default: 'models' },
    port: { type: 'string', default: '18480' },
    root: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const port = Number(values.port);
const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const root = path.resolve(values.root ?? here);
const base = `http://127.0.0.1:${port}`;

const server = spawn(
  process.execPath,
  [
    '--initial-old-space-size=128',
    path.join(root, 'dist', 'bin', 'vitrine.js'),
    'serve',
    '--models',
    values.models!,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--log-level',
    'error',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
process.on('exit', () => server.kill('SIGKILL'));
await waitReady(base, 120);
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const image = readFileSync(path.join(here, 'server', 'web', 'examples', 'cat.png'));
const form = new FormData();
form.append('image', new Blob([image], { type: 'image/png' }), 'cat.png');
const { id } = (await (await fetch(`${base}/classify?model=vit-cifar10`, { method: 'POST', body: form })).json()) as { id: string };

/** Runs `client` (a loop that stops when `until` passes) `count` times at once. */
async function phase(name: string, count: number, client: (until: number) => Promise<void>) {
  const start = rssMb();
  let max = start;
  const watch = setInterval(() => (max = Math.max(max, rssMb())), 250);
  const until = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: count }, () => client(until)));
  clearInterval(watch);
  const end = rssMb();
  await sleep(5000);
  console.log(
    JSON.stringify({
      bench: 'soak',
      phase: name,
      clients: count,
      seconds,
      rss_start_mb: Math.round(start),
      rss_max_mb: Math.round(max),
      rss_end_mb: Math.round(end),
      rss_idle_mb: Math.round(rssMb()),
    }),
  );
}

let variant = 0;
await phase('map variants', 16, async (until) => {
  while (Date.now() < until) {
    const i = ++variant;
    await fetch(`${base}/attention/${id}?format=json&discard=${i}e-9&head=${String(i % 4).padStart(8000, '0')}`).then((r) =>
      r.arrayBuffer(),
    );
  }
});

/** One connection at a time until `until`: `open` writes to it, and the next opens when the server closes it. */
async function connections(until: number, open: (socket: net.Socket) => void) {
  while (Date.now() < until) {
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => open(socket));
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      const stop = setTimeout(() => socket.destroy(), Math.max(0, until - Date.now()));
      socket.on('close', () => clearTimeout(stop));
    });
  }
}

await phase('stalled uploads', 40, (until) =>
  connections(until, (socket) => {
    socket.write('POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10485760\r\n\r\n');
    socket.write(Buffer.alloc(5 * 1024 * 1024, 7));
  }),
);

const docs = Buffer.from('GET /docs/json HTTP/1.1\r\nHost: x\r\n\r\n');
await phase('pipelining without reading', 8, (until) =>
  connections(until, (socket) => {
    socket.pause();
    socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => docs)));
    // a paused socket sees no close until it reads: read once the server has stopped answering
    setTimeout(() => socket.resume(), 2000);
  }),
);

server.kill('SIGTERM');
