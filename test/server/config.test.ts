import os from 'node:os';
import t from 'tap';
import { defaultServeConfig, loadServeConfig } from '../../server/config.js';

t.test('flags and environment make one validated config; flags win', async (t) => {
  t.same(loadServeConfig([], {}), defaultServeConfig());
  const c = loadServeConfig(['--max-batch', '16', '--port', '9000'], { PORT: '7000', HOST: '127.0.0.1', VITRINE_MAX_DELAY_MS: '7', VITRINE_API_KEY: 'k', VITRINE_CORS_ORIGIN: 'https://a.org, https://b.org' });
  t.equal(c.maxBatch, 16);
  t.equal(c.port, 9000, 'flag over PORT');
  t.equal(c.host, '127.0.0.1');
  t.equal(c.maxDelayMs, 7);
  t.equal(c.apiKey, 'k');
  t.same(c.corsOrigin, ['https://a.org', 'https://b.org']);
  t.equal(loadServeConfig([], { VITRINE_DECODERS: '3' }).decoders, 3);
  // the defaults follow the cores: half of them decode (at least one), one worker per core up to 8
  const cores = os.availableParallelism();
  t.equal(defaultServeConfig().decoders, Math.max(1, Math.floor(cores / 2)), `${cores} cores`);
  t.equal(defaultServeConfig().workers, Math.max(1, Math.min(8, cores)), `${cores} cores`);
});

t.test('bad values and unknown flags are one-line errors naming the source', async (t) => {
  t.throws(() => loadServeConfig(['--workers', '0'], {}), /--workers must be an integer in \[1, 64\], got '0'/);
  t.throws(() => loadServeConfig([], { VITRINE_DEVICE: 'tpu' }), /VITRINE_DEVICE must be one of cpu, cuda, auto, got 'tpu'/);
  t.throws(() => loadServeConfig([], { PORT: 'eighty' }), /PORT must be an integer/);
  t.throws(() => loadServeConfig(['--turbo', '1'], {}), /^unknown flag --turbo$/);
});
