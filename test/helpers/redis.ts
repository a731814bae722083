// A real redis-server (Debian's package; .ci/run installs it) on a free local port, with an
// append-only file in a temporary folder so that a restart keeps its data, stopped when the test ends.

import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import type { Test } from 'tap';
import { tmpDir } from './data.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(t: Test): Promise<RedisServer> {
  let port = await freePort();
  const dir = await tmpDir('vitrine-redis-');
  let child: ChildProcess | null = null;
  const server: RedisServer = {
    get url() {
      return `redis://127.0.0.1:${port}/0`;
    },
    async start() {
      const proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child = proc;
      let out = '';
      await new Promise<void>((resolve, reject) => {
        proc.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('Ready to accept connections')) resolve();
        });
        proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)));
      });
    },
    async stop() {
      const proc = child;
      if (!proc || proc.exitCode !== null) return;
      child = null;
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    },
  };
  // the port is the one the server binds: where another process took it between, another is tried
  for (let tries = 1; ; tries++) {
    try {
      await server.start();
      break;
    } catch (err) {
      if (tries === 5 || !/already in use/i.test((err as Error).message)) throw err;
      port = await freePort();
    }
  }
  t.teardown(() => server.stop());
  return server;
}

/** A service whose kept results live in a redis-server of its own (started, and ready), and a client
 *  of that Redis for the test to read or write it directly; all stopped when the test ends. */
export async function appOnRedis(t: Test, over: Partial<import('../../server/config.js').ServeConfig> = {}) {
  const { testApp } = await import('./server.js');
  const redis = await startRedis(t);
  const app = await testApp(t, { resultsStore: redis.url, ...over });
  await (app.vitrine.results as import('../../server/results/redis.js').RedisResults).waitReady(10_000);
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  t.teardown(() => client.quit());
  return { app, client, redis };
}
