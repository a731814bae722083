// The GPU check (bench/gpu-check) stays runnable: its graphs are written, and the check itself (the
// script carried to a GPU machine) runs some of them on lavapipe and finds the providers agree.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import t from 'tap';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { haveWebGpu } from '../helpers/webgpu.js';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('the GPU check: graphs written, and the check agrees on lavapipe', async (t) => {
  if (!haveWebGpu(t)) return;
  const dir = await tmpDir('vitrine-gpu-check-');
  const graphs = path.join(dir, 'graphs');
  const g = await run(['bench/gpu-check/graphs.ts', '--out', graphs]);
  t.equal(g.code, 0, g.stderr);
  const manifest = JSON.parse(await readFile(path.join(graphs, 'manifest.json'), 'utf8')) as { name: string; cpuNodes: string[] }[];
  t.same(manifest.map((e) => e.name).slice(0, 3), ['seed-step', 'cct-cifar10-step', 'deit-tiny-224-step']);
  t.equal(
    manifest.find((e) => e.name === 'cct-cifar10-relevance')?.cpuNodes.length,
    2,
    "cct-cifar10's explanation graph: two MaxPool nodes for the CPU",
  );
  const out = path.join(dir, 'results.jsonl');
  const c = await run([
    'bench/gpu-check/check.ts',
    '--graphs',
    graphs,
    '--quick',
    '--only',
    'cct-cifar10-step,cct-cifar10-relevance',
    '--out',
    out,
  ]);
  t.equal(c.code, 0, c.stderr);
  const records = (await readFile(out, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.same(
    records.map((r) => [r.graph ?? 'summary', r.agree ?? r.failures]),
    [
      ['cct-cifar10-step', true],
      ['cct-cifar10-relevance', true],
      ['summary', 0],
    ],
  );
  t.ok(records[0].webgpu_images_per_s > 0 && records[0].adamw_js_ms > 0, 'a step says its images/s and what AdamW costs');
});
