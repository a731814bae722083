// A client pipelining requests without reading the answers is cut off once it has more than
// MAX_PIPELINED of them pending, instead of having every answer made and held (8 such connections
// of 20,000 GET /docs/json once grew the process by ~600 MB, kept after they closed).

import net from 'node:net';
import t from 'tap';
import { MAX_PIPELINED } from '../../server/http/plugin.js';
import { testApp } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const connections = (server: net.Server) => new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n)));

t.test('a connection that never reads its pipelined answers is closed by the server', async (t) => {
  const app = await testApp(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  const socket = net.connect(port, '127.0.0.1');
  socket.pause(); // never read (a paused socket also sees no close until it reads, so the server is asked)
  socket.on('error', () => {});
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  t.equal(await connections(app.server), 1);
  const request = Buffer.from('GET /docs/json HTTP/1.1\r\nHost: x\r\n\r\n');
  socket.write(Buffer.concat(Array.from({ length: 20 * MAX_PIPELINED }, () => request)));
  await until('the server has closed the connection', async () => (await connections(app.server)) === 0, 30_000);
  t.pass(`closed by the server (${20 * MAX_PIPELINED} requests pipelined, no answer read)`);
  t.equal((await app.inject('/healthz')).statusCode, 200, 'the service answers others');
});

t.test('a client that reads its answers may pipeline up to the bound', async (t) => {
  const app = await testApp(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (d) => (text += d.toString()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(Buffer.concat(Array.from({ length: MAX_PIPELINED }, () => Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'))));
  await until(`${MAX_PIPELINED} answers`, () => (text.match(/HTTP\/1\.1 200/g)?.length ?? 0) === MAX_PIPELINED, 30_000);
  t.equal(socket.destroyed, false, 'the connection stays open');
  socket.destroy();
});
