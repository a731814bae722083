// The bundled models' cards are generated: rendered again from each folder's files, with the
// held-out figures read back from the committed card (measuring them needs the CIFAR-10 download,
// which tests never fetch: `vitrine card --model models/<name>` measures them), they are the
// committed README.md byte for byte. And the card's metadata is the YAML Hugging Face reads.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { CARD_FILE, cardSources, renderModelCard } from '../../trainer/card.js';
import { parseViTConfig } from '../../trainer/vit/config.js';
import { ViT } from '../../trainer/vit/model.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { ROOT } from '../helpers/cli.js';

for (const name of ['cct-cifar10', 'vit-cifar10']) {
  t.test(`models/${name}/README.md is the card its files give`, async (t) => {
    const dir = path.join(ROOT, 'models', name);
    const committed = await readFile(path.join(dir, CARD_FILE), 'utf8');
    const config = await readModelConfig(dir);
    // the evaluation, read back from the card's table
    const rows = [...committed.matchAll(/^\| (\S+) \| ([\d.]+)% \| (\d+) \|$/gm)];
    t.equal(rows.length, 10, 'ten classes in the table');
    const summary = /^([\d.]+)% on (\d+) images, (.*); mean cross-entropy ([\d.]+)\.$/m.exec(committed)!;
    t.ok(summary, 'the held-out summary line');
    const K = config.labels.length;
    const confusion = rows.map(([, , acc, n], k) => {
      const right = Math.round((Number(acc) / 100) * Number(n));
      return config.labels.map((_, j) => (j === k ? right : j === (k + 1) % K ? Number(n) - right : 0));
    });
    const result = {
      count: Number(summary[2]),
      loss: Number(summary[4]),
      accuracy: Number(summary[1]) / 100,
      perClass: rows.map(([, , acc]) => Number(acc) / 100),
      confusion,
    };
    const parameters = new ViT(parseViTConfig(config.vit, name)).parameterCount();
    const card = renderModelCard({ name, config, parameters, evaluation: { result, which: summary[3] }, ...(await cardSources(dir)) });
    t.equal(card, committed);
    t.match(committed, /^---\nlibrary_name: vitrine\n[\s\S]*\ndatasets:\n- cifar10\n[\s\S]*\n---\n\n# /, 'YAML metadata first');
    t.match(committed, /\n## Notes\n/, 'the hand-written notes kept, after what is generated');
  });
}
