// Named recipes: the JSON files in trainer/recipes/. They are data, not code, so the TypeScript build
// does not copy them: from the sources (tsx) they sit beside this folder, from the build output
// (dist/trainer/train) they are found in the package's own trainer/recipes.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The recipes folder, from the sources or the build output. */
export function recipesDir(): string {
  const candidates = [path.join(here, '..', 'recipes'), path.join(here, '..', '..', '..', 'trainer', 'recipes')];
  return candidates.find((p) => existsSync(path.join(p, 'cifar10.json'))) ?? candidates[0];
}

export async function recipeNames(): Promise<string[]> {
  try {
    return (await fs.readdir(recipesDir()))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
  } catch {
    return [];
  }
}

/** The file of a named recipe, or null when there is none by that name. */
export function recipeFile(name: string): string | null {
  const file = path.join(recipesDir(), `${name}.json`);
  return /^[\w.-]+$/.test(name) && existsSync(file) ? file : null;
}
