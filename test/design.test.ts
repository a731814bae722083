// Layering: no import circle among the sources (madge reads the TypeScript imports).

import path from 'node:path';
import t from 'tap';
import madge from 'madge';

const ROOT = path.resolve(import.meta.dirname, '..');

t.test('no import circle in trainer/, runtime/, server/ or bin/', async (t) => {
  const graph = await madge(
    ['trainer', 'runtime', 'server', 'bin'].map((d) => path.join(ROOT, d)),
    { fileExtensions: ['ts'], tsConfig: path.join(ROOT, 'tsconfig.json'), baseDir: ROOT },
  );
  const files = Object.keys(graph.obj());
  t.ok(
    files.includes('server/http/app.ts') && graph.obj()['server/http/app.ts'].includes('server/http/plugin.ts'),
    'imports are resolved (http/app.ts depends on http/plugin.ts)',
  );
  t.same(graph.circular(), [], 'no circle');
});

const sources = async (dirs: string[]) => {
  const { readdir, readFile } = await import('node:fs/promises');
  const out: { file: string; text: string }[] = [];
  for (const d of dirs) {
    for (const e of await readdir(path.join(ROOT, d), { recursive: true, withFileTypes: true })) {
      if (e.isFile() && e.name.endsWith('.ts')) {
        const file = path.relative(ROOT, path.join(e.parentPath, e.name));
        out.push({ file, text: await readFile(path.join(ROOT, file), 'utf8') });
      }
    }
  }
  return out;
};

t.test('images become tensors in one place: only runtime/image.ts imports sharp', async (t) => {
  const files = await sources(['trainer', 'runtime', 'server', 'bin']);
  t.ok(files.length > 50, `read the sources (${files.length} files)`);
  t.same(
    files.filter((f) => /from 'sharp'|import\('sharp'\)|require\('sharp'\)/.test(f.text)).map((f) => f.file),
    ['runtime/image.ts'],
  );
});

t.test('runtime/ is the bottom layer: it imports nothing from trainer/, server/ or bin/', async (t) => {
  const files = await sources(['runtime']);
  t.same(
    files.filter((f) => /from '\.\.\/(trainer|server|bin)\//.test(f.text)).map((f) => f.file),
    [],
  );
});

t.test('server/ never imports trainer/ (the service runs models, it does not train them)', async (t) => {
  const files = await sources(['server']);
  t.ok(files.length > 20, `read server/ (${files.length} files)`);
  t.same(
    files.filter((f) => /from '(\.\.\/)+trainer\/|import\('(\.\.\/)+trainer\//.test(f.text)).map((f) => f.file),
    [],
  );
});

// The rooms of server/ and what each may import besides runtime/ and the shared errors.ts, gate.ts,
// config.ts and auth.ts: the engine (models, workers, batcher, maps) and drawing know nothing of HTTP or
// of each other; oip/ (the Open Inference Protocol's bodies and its model side) runs on the engine; the
// gRPC binding sees the engine and oip/ but not HTTP; http/ is the one room that sees them all.
const ROOMS: Record<string, string[]> = {
  engine: ['engine'],
  drawing: ['drawing'],
  results: ['results'],
  oip: ['oip', 'engine'],
  grpc: ['grpc', 'oip', 'engine'],
  http: ['engine', 'drawing', 'results', 'oip', 'grpc', 'http'],
  api: ['engine', 'drawing', 'api'],
};
const SHARED = ['server/errors.ts', 'server/gate.ts', 'server/config.ts', 'server/auth.ts'];

t.test('server/ is in rooms, and each room imports only what it may', async (t) => {
  const files = await sources(['server']);
  const loose = files.filter((f) => path.dirname(f.file) === 'server' && !SHARED.includes(f.file)).map((f) => f.file);
  t.same(loose, [], 'no file in server/ itself besides the shared ones');
  const broken: string[] = [];
  for (const f of files) {
    const room = f.file.split('/')[1];
    const allowed = SHARED.includes(f.file) ? [] : ROOMS[room];
    t.ok(allowed, `${f.file} is in a known room`);
    for (const m of f.text.matchAll(/(?:from |import\(|import )'(\.{1,2}\/[^']+)'/g)) {
      const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(f.file), m[1])).replace(/\.js$/, '.ts');
      if (!target.startsWith('server/') || SHARED.includes(target)) continue;
      if (!(allowed ?? []).includes(target.split('/')[1])) broken.push(`${f.file} imports ${target}`);
    }
  }
  t.same(broken, []);
});

t.test('each worker protocol lives beside its owner', async (t) => {
  const files = await sources(['server', 'trainer', 'runtime']);
  const users = (name: string) =>
    files
      .filter((f) => f.text.includes(`/${name}.js'`))
      .map((f) => path.dirname(f.file))
      .filter((d, i, a) => a.indexOf(d) === i);
  t.same(users('inference-protocol'), ['server/engine'], "the inference workers' messages: engine/ only");
  t.same(users('batch-protocol'), ['trainer/data'], "the batch worker's messages: trainer/data/ only");
});

t.test('no file in server/ is over 250 lines', async (t) => {
  const files = await sources(['server']);
  t.same(
    files.filter((f) => f.text.split('\n').length > 251).map((f) => `${f.file}: ${f.text.split('\n').length - 1} lines`),
    [],
  );
});

t.test('tests pass dependencies in rather than mocking imports (t.mockImport hangs under Node.js 22 with tsx)', async (t) => {
  const tests = await sources(['test']);
  t.ok(tests.length > 50, 'the tests were read');
  const mocking = tests.filter((s) => s.file !== 'test/design.test.ts' && /\bt\.mock(Import|Require)\(/.test(s.text)).map((s) => s.file);
  t.same(mocking, []);
});

t.test('no source line is over 140 characters (Biome formats to 140; long strings are split by hand)', async (t) => {
  const files = await sources(['trainer', 'runtime', 'server', 'bin', 'bench', 'test', 'docs']);
  const long = files.flatMap((f) =>
    f.text
      .split('\n')
      .map((line, i) => [line, i] as const)
      .filter(([line]) => line.length > 140)
      .map(([line, i]) => `${f.file}:${i + 1} (${line.length})`),
  );
  t.same(long, []);
});
