// Layering: no import circle among the sources (madge reads the TypeScript imports).

import path from 'node:path';
import t from 'tap';
import madge from 'madge';

const ROOT = path.resolve(import.meta.dirname, '..');

t.test('no import circle in trainer/, runtime/, server/ or bin/', async (t) => {
  const graph = await madge(['trainer', 'runtime', 'server', 'bin'].map((d) => path.join(ROOT, d)), { fileExtensions: ['ts'], tsConfig: path.join(ROOT, 'tsconfig.json'), baseDir: ROOT });
  const files = Object.keys(graph.obj());
  t.ok(files.includes('server/app.ts') && graph.obj()['server/app.ts'].includes('server/plugin.ts'), 'imports are resolved (app.ts depends on plugin.ts)');
  t.same(graph.circular(), [], 'no circle');
});
