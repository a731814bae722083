// Every recipe file in the repository is a valid training config with a valid model: the named ones
// (trainer/recipes), and the ablations' (bench/ablation, bench/ablation/budget).

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { DEFAULT_TRAIN, type TrainConfig, mergeTrainConfig } from '../../../trainer/train/config.js';
import { recipesDir } from '../../../trainer/train/recipes.js';
import { parseViTConfig } from '../../../trainer/vit/config.js';
import { ViT } from '../../../trainer/vit/model.js';

const dirs = [recipesDir(), path.resolve('bench', 'ablation'), path.resolve('bench', 'ablation', 'budget')];

t.test('recipes parse, and their models build', async (t) => {
  for (const dir of dirs) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    t.ok(files.length > 0, `${dir} has recipes`);
    for (const f of files) {
      const raw = JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
      const c = mergeTrainConfig({ ...DEFAULT_TRAIN } as TrainConfig, raw, f);
      const vit = parseViTConfig(c.model ?? {}, `${f} model`);
      t.ok(
        new ViT(vit).parameterCount() > 0,
        `${path.basename(dir)}/${f}: ${c.epochs} epochs, a model of ${new ViT(vit).parameterCount()} parameters`,
      );
    }
  }
});
