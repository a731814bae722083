import os from 'node:os';
import t from 'tap';
import { defaultServeConfig, loadServeConfig } from '../../server/config.js';

t.test('flags and environment make one validated config; flags win', async (t) => {
  t.same(loadServeConfig([], {}), defaultServeConfig());
  const c = loadServeConfig(['--max-batch', '16', '--port', '9000'], {
    PORT: '7000',
    HOST: '127.0.0.1',
    VITRINE_MAX_DELAY_MS: '7',
    VITRINE_API_KEY: 'k',
    VITRINE_CORS_ORIGIN: 'https://a.org, https://b.org',
  });
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
  t.throws(() => loadServeConfig([], { VITRINE_DEVICE: 'tpu' }), /VITRINE_DEVICE must be one of cpu, webgpu, cuda, auto, got 'tpu'/);
  t.throws(() => loadServeConfig([], { PORT: 'eighty' }), /PORT must be an integer/);
  t.throws(() => loadServeConfig(['--turbo', '1'], {}), /^unknown flag --turbo$/);
});

t.test('one schema gives the type, the defaults, the flags and the variables', async (t) => {
  const { Value } = await import('@sinclair/typebox/value');
  const { SERVE_ENV, SERVE_USAGE, ServeConfigSchema } = await import('../../server/config.js');
  t.ok(Value.Check(ServeConfigSchema, defaultServeConfig()), 'the defaults satisfy the schema');
  const loaded = loadServeConfig(['--results-store', 'redis://cache:6379/1', '--log-level', 'warn'], {
    VITRINE_CORS_ORIGIN: '*',
    VITRINE_API_KEY: 'k',
    VITRINE_WORKERS: '3',
  });
  t.ok(Value.Check(ServeConfigSchema, loaded), 'a loaded config satisfies the schema');
  for (const key of Object.keys(ServeConfigSchema.properties)) {
    const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    t.match(SERVE_USAGE, `[--${flag} `, `--${flag} in the usage`);
    t.ok(SERVE_ENV.includes(`VITRINE_${flag.replace(/-/g, '_').toUpperCase()}`), `VITRINE_ variable for ${key}`);
  }
  t.ok(SERVE_ENV.includes('PORT') && SERVE_ENV.includes('HOST'), 'the aliases the schema declares');
  t.equal(loadServeConfig([], { VITRINE_API_KEY: '' }).apiKey, null, 'an empty variable leaves the default');
});
