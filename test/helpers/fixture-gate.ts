// Test files that need the reference fixtures (../shared/fixtures), found by their imports, so a
// fresh clone without the fixtures runs everything else. Used by vitest.config.ts: when the
// fixtures are missing, such a file is replaced by one skipped test whose name is the reason.
//
// A file needs the fixtures when it imports a fixture path from helpers/paths.ts (anything but
// repoRoot), or imports from a helper that does (directly or through another helper). A file
// that names `fixturesMissing` decides per test itself (it.skipIf(fixturesMissing !== null)) and
// is left as it is.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const NOT_FIXTURE_PATHS = new Set(['repoRoot', 'fixturesMissing', 'fixturesRequired']);

interface ValueImport {
  from: string; // resolved path without extension
  names: string[];
}

function valueImports(file: string, source: string): ValueImport[] {
  const out: ValueImport[] = [];
  for (const m of source.matchAll(/^import\s+(type\s+)?([^;]*?)\s+from\s+'(\.[^']+)';/gms)) {
    if (m[1]) continue; // import type { ... }
    const clause = m[2]!;
    const braces = /\{([^}]*)\}/.exec(clause);
    const names = braces
      ? braces[1]!
          .split(',')
          .map((n) => n.trim())
          .filter((n) => n && !n.startsWith('type '))
          .map((n) => n.split(/\s+as\s+/)[0]!)
      : [clause.trim()];
    if (names.length === 0) continue;
    out.push({ from: path.resolve(path.dirname(file), m[3]!).replace(/\.(js|ts)$/, ''), names });
  }
  return out;
}

export function fixtureGate(helpersDir: string): (file: string, source: string) => boolean {
  const pathsModule = path.join(helpersDir, 'paths');
  const helpers = new Map<string, ValueImport[]>();
  for (const f of readdirSync(helpersDir)) {
    if (!f.endsWith('.ts')) continue;
    const file = path.join(helpersDir, f);
    helpers.set(file.replace(/\.ts$/, ''), valueImports(file, readFileSync(file, 'utf8')));
  }
  const usesFixturePaths = (imports: ValueImport[]) => imports.some((i) => i.from === pathsModule && i.names.some((n) => !NOT_FIXTURE_PATHS.has(n)));
  // Helpers that reach the fixtures, to a fixed point.
  const fixtureHelpers = new Set<string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const [helper, imports] of helpers) {
      if (fixtureHelpers.has(helper)) continue;
      if (usesFixturePaths(imports) || imports.some((i) => fixtureHelpers.has(i.from))) {
        fixtureHelpers.add(helper);
        grew = true;
      }
    }
  }
  return (file, source) => {
    if (/\bfixturesMissing\b/.test(source)) return false;
    const imports = valueImports(file, source);
    return usesFixturePaths(imports) || imports.some((i) => fixtureHelpers.has(i.from) && i.names.some((n) => !NOT_FIXTURE_PATHS.has(n)));
  };
}
