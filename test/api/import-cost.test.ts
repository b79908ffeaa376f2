// What `import 'vargpt'` and loadModel evaluate. llama-tokenizer-js decodes its 32k-token
// vocabulary when it is imported, blocking the importing thread; only synthesize() for VARGPT v1
// needs it, so nothing else may import it. A module resolve hook in a child process lists every
// module a script imports; the synthesize case is the control that shows the hook sees it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { repoRoot } from '../helpers/paths.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'vargpt-import-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const HOOK = `export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  process.stderr.write('resolved ' + result.url + '\\n');
  return result;
}`;

// The URLs of the modules `body` imports (the package and everything it reaches).
function importedModules(body: string): string[] {
  const entry = pathToFileURL(path.join(repoRoot, 'dist', 'index.js')).href;
  const script = `
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}));
    const vargpt = await import(${JSON.stringify(entry)});
    ${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr
    .split('\n')
    .filter((line) => line.startsWith('resolved '))
    .map((line) => line.slice('resolved '.length));
}

const llamaTokenizer = (urls: string[]) => urls.filter((u) => u.includes('/llama-tokenizer-js/'));

describe('what importing the package costs', () => {
  it('import and loadModel of the built-in model never import llama-tokenizer-js; synthesizing a VARGPT v1 checkpoint does', () => {
    const demo = path.join(repoRoot, 'models', 'vargpt-v1-demo');
    const loaded = importedModules(`const m = await vargpt.loadModel(${JSON.stringify(demo)}); m.dispose();`);
    expect(loaded.some((u) => u.endsWith('/dist/model.js'))).toBe(true);
    expect(llamaTokenizer(loaded)).toEqual([]);

    const out = path.join(scratch, 'tiny');
    const synthesized = importedModules(`await vargpt.synthesize({ preset: 'tiny', out: ${JSON.stringify(out)}, seed: 1 });`);
    expect(llamaTokenizer(synthesized).length).toBeGreaterThan(0);
  });
});
