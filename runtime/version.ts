// vitrine's version, as package.json gives it: the one place it is written, and where the package is
// (its root holds the bundled models). Found by walking up from this file, so that it is read alike
// from the sources (runtime/) and from the build (dist/runtime/), wherever the command runs.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function readPackage(): { root: string; version: string } {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vitrine' && pkg.version) return { root: dir, version: pkg.version };
    }
    if (path.dirname(dir) === dir) throw new Error(`vitrine's package.json was not found above ${import.meta.dirname}`);
  }
}

const PACKAGE = readPackage();
export const VITRINE_VERSION = PACKAGE.version;
/** The package's folder (where its package.json is). */
export const PACKAGE_ROOT = PACKAGE.root;
/** The models that ship with the package (cct-cifar10, vit-cifar10). */
export const BUNDLED_MODELS = path.join(PACKAGE.root, 'models');
