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

t.test('uploads in flight share a byte budget: past it a request is answered 503 before its body is read', async (t) => {
  const app = await testApp(t, { maxBodyBytesInFlight: 25 * 1024 * 1024, requestTimeoutMs: 60_000 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  // two stalled 10 MB uploads hold 20 MB of the 25
  const held = Array.from({ length: 2 }, () => {
    const s = net.connect(port, '127.0.0.1', () =>
      s.write('POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10485760\r\n\r\n'),
    );
    s.on('error', () => {});
    return s;
  });
  t.teardown(() => held.forEach((s) => s.destroy()));
  const { until } = await import('../helpers/wait.js');
  const upload = () =>
    fetch(`http://127.0.0.1:${port}/classify`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: Buffer.alloc(8 * 1024 * 1024, 1),
    });
  // once the server has the two uploads' headers, an 8 MB upload is past the budget
  let third: Response | null = null;
  await until(
    'an 8 MB upload is refused',
    async () => {
      third = await upload();
      return third.status === 503;
    },
    10_000,
  );
  t.equal(third!.status, 503, 'an 8 MB upload past the budget: 503');
  t.match(
    ((await third!.json()) as { message: string }).message,
    /request bodies in flight would exceed 26214400 bytes \(--max-body-bytes-in-flight\)/,
  );
  const small = await fetch(`http://127.0.0.1:${port}/classify`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: Buffer.alloc(1024, 1),
  });
  t.equal(small.status, 415, 'a small one within the budget is read (and refused as no image)');
  held.forEach((s) => s.destroy());
  await until('their share is back', async () => (await upload()).status === 415);
  t.pass('once the stalled uploads are gone, an 8 MB upload is read');
});
