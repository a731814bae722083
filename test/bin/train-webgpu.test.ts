// `vitrine train --device webgpu` (lavapipe here) trains as the CPU does: the same losses through the
// first epoch for the seed ViT, the folder recipe's convolutional tokenizer, and a Hugging Face DeiT
// fine-tuned with its encoder frozen (the finetune recipe's first epochs), and it says what the step
// runs on.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, runCli } from '../helpers/cli.js';
import { colourDataset, tmpDir, writeImageFolder } from '../helpers/data.js';
import { haveWebGpu } from '../helpers/webgpu.js';

const losses = async (out: string) =>
  (await readFile(path.join(out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { train_loss: number; test_loss: number });

t.test('train on webgpu: the CPU provider losses, for the seed ViT and the convolutional tokenizer', async (t) => {
  if (!haveWebGpu(t)) return;
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(32, 32, 3), data);
  const runs: [string, string[]][] = [
    ['the seed ViT', ['--recipe', 'seed', '--batch-size', '8']],
    ['the folder recipe (convolutional tokenizer)', []],
    [
      'a frozen DeiT fine-tuned',
      ['--init', path.join(ROOT, 'test', 'fixtures', 'foreign', 'hf-deit'), '--recipe', 'finetune', '--batch-size', '9'],
    ],
  ];
  for (const [name, flags] of runs) {
    const got: Record<string, { train_loss: number; test_loss: number }[]> = {};
    for (const device of ['cpu', 'webgpu']) {
      const out = path.join(dir, `${name.split(' ')[1]}-${device}`);
      const r = await runCli(['train', '--data', data, ...flags, '--epochs', '1', '--device', device, '--out', out]);
      t.equal(r.code, 0, r.stderr);
      if (device === 'webgpu')
        t.match(
          r.stderr,
          /the training step runs on webgpu \(llvmpipe \(Mesa lavapipe\), a software adapter\)/,
          `${name}: says where the step runs`,
        );
      got[device] = await losses(out);
    }
    if (name.includes('frozen'))
      t.match(
        await readFile(path.join(dir, `${name.split(' ')[1]}-webgpu`, 'train-config.json'), 'utf8'),
        /"freeze": "encoder"/,
        'the encoder frozen',
      );
    const [cpu, gpu] = [got.cpu[0], got.webgpu[0]];
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(a);
    t.ok(
      rel(cpu.train_loss, gpu.train_loss) < 1e-3,
      `${name}: first epoch's training loss ${gpu.train_loss} against the CPU's ${cpu.train_loss}`,
    );
    t.ok(rel(cpu.test_loss, gpu.test_loss) < 1e-3, `${name}: held-out loss ${gpu.test_loss} against ${cpu.test_loss}`);
  }
});
