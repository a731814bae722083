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
    files.includes('server/app.ts') && graph.obj()['server/app.ts'].includes('server/plugin.ts'),
    'imports are resolved (app.ts depends on plugin.ts)',
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
