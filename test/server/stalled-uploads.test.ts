// A client that declares a large body and stops sending is answered 408 and closed once the request
// timeout has passed, and its connection no longer counts; before, 40 such uploads were all still
// open after 120 s (Fastify's requestTimeout was 0).

import net from 'node:net';
import t from 'tap';
import { loadServeConfig } from '../../server/config.js';
import { testApp } from '../helpers/server.js';

/** Sends the headers of a 10 MB upload and 64 KB of it, then nothing; resolves with what came back and when the socket closed. */
function stall(port: number): Promise<{ answer: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10485760\r\n\r\n');
      socket.write(Buffer.alloc(65536, 7));
    });
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started }));
  });
}

t.test('a stalled upload is answered 408 and closed after the request timeout', async (t) => {
  const app = await testApp(t, { requestTimeoutMs: 600 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  const stalled = await Promise.all(Array.from({ length: 5 }, () => stall(port)));
  for (const s of stalled) {
    t.match(s.answer, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout');
    t.ok(s.closedAfterMs >= 600, `closed after ${s.closedAfterMs} ms, not before the timeout (600 ms)`);
  }
  t.equal(await new Promise((resolve) => app.server.getConnections((_, n) => resolve(n))), 0, 'no connection left open');
});

t.test('the timeouts are flags with defaults, and reach the HTTP server', async (t) => {
  const defaults = loadServeConfig([], {});
  t.equal(defaults.requestTimeoutMs, 30_000);
  t.equal(defaults.keepAliveTimeoutMs, 5_000);
  t.equal(loadServeConfig(['--request-timeout-ms', '0'], {}).requestTimeoutMs, 0, '0: no limit');
  t.equal(loadServeConfig([], { VITRINE_KEEP_ALIVE_TIMEOUT_MS: '2000' }).keepAliveTimeoutMs, 2000);
  const app = await testApp(t);
  t.equal(app.server.requestTimeout, 30_000);
  t.equal(app.server.headersTimeout, 10_000);
  t.equal(app.server.keepAliveTimeout, 5_000);
});
