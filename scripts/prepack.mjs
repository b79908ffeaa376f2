#!/usr/bin/env node
// npm "prepack" (npm pack, npm publish; "prepare" compiles the TypeScript right after): the
// Node-API prebuild of this platform (scripts/prebuild.mjs, also `npm run prebuildify`), so a
// tarball never carries a prebuild of older sources. `npm pack --dry-run` only lists what would
// be packed: it does not compile the addon, and says so.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (process.env.npm_config_dry_run === 'true') {
  console.error('vargpt prepack: --dry-run, so the prebuild in prebuilds/ is not rebuilt (npm pack rebuilds it)');
} else {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'prebuild.mjs')], { cwd: root, stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
