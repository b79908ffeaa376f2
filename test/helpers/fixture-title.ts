// For files that mix tests on the reference fixtures with tests that need none: such a file names
// `fixturesMissing`, so the gate (fixture-gate.ts) leaves it to run on a fresh clone, and it skips
// its fixture tests itself, `it.skipIf(fixturesMissing !== null)(fixtureTitle('...'), ...)` (or
// describe.skipIf). The reason goes into the skipped title, as the gate's one skipped test has it.
import { fixturesMissing } from './paths.js';

export function fixtureTitle(title: string): string {
  return fixturesMissing === null ? title : `${title} [${fixturesMissing}]`;
}
