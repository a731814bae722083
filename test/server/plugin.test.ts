// The service as a Fastify plugin inside another application: its routes, context and hooks live
// beside the host's own routes.

import Fastify from 'fastify';
import t from 'tap';
import { vitrine } from '../../server/http/plugin.js';
import { testConfig, testImage } from '../helpers/server.js';

t.test('another Fastify app can register the service', async (t) => {
  const host = Fastify({ logger: false });
  host.get('/mine', async () => ({ mine: true }));
  await host.register(vitrine, { config: await testConfig() });
  await host.ready();
  t.teardown(() => host.close());
  t.same((await host.inject('/mine')).json(), { mine: true }, "the host's route");
  const res = await host.inject({ method: 'POST', url: '/classify', payload: await testImage(), headers: { 'content-type': 'image/png' } });
  t.equal(res.statusCode, 200, res.body.slice(0, 200));
  t.equal(host.vitrine.defaultModel, 'vit-cifar10', 'the context is on the host instance');
  t.equal((await host.inject('/v2/models/vit-cifar10/ready')).statusCode, 200);
  t.equal((await host.inject('/nowhere')).json().code, 'VIT_NOT_FOUND', "the service's error shape");
});

t.test('the service has no plugin start timeout: loading big models may take longer than 10 s', async (t) => {
  const { testApp } = await import('../helpers/server.js');
  const app = await testApp(t);
  // a ViT-B/16 beside another model once took longer than Fastify's default 10 s to load, and the
  // start failed with "Plugin did not start in time"
  t.equal(app.initialConfig.pluginTimeout, 0);
});
