// Layering: no import circle among the sources (madge reads the TypeScript imports).

import path from 'node:path';
import t from 'tap';
import madge from 'madge';

const ROOT = path.resolve(import.meta.dirname, '..');

t.test('no import circle in trainer/, runtime/, server/ or bin/', async (t) => {
  const graph = await madge(['trainer', 'runtime', 'server', 'bin'].map((d) => path.join(ROOT, d)), { fileExtensions: ['ts'], tsConfig: path.join(ROOT, 'tsconfig.json'), baseDir: ROOT });
  const files = Object.keys(graph.obj());
  t.ok(files.includes('server/routes/classify.ts') && graph.obj()['server/routes/classify.ts'].includes('server/context.ts'), 'imports are resolved (a route depends on the context)');
  t.same(graph.circular(), [], 'no circle');
});
