#!/usr/bin/env node
// npm run build:cuda: the cmake-js build of the addon plus, when nvcc is found, the CUDA backend
// library. Node-API headers come from the node-api-headers package, so nothing is downloaded.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const jobs = process.env.JOBS ?? '2';
const extra = process.argv.slice(2);
const result = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--parallel', jobs, ...extra], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
