// The demo model shipped inside the package (models/vargpt-v1-demo): a small VARGPT v1 trained on
// a synthetic world of flat coloured shapes (training/demo/), so a fresh install draws and answers
// something real without downloading 15-20 GB of weights. It is what the CLI, `vargpt serve` and
// the quickstart use when no model folder is given.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const DEMO_MODEL_NAME = 'vargpt-v1-demo';

// What the demo knows, for notices and help texts.
export const DEMO_MODEL_SUMMARY =
  'a small VARGPT v1 trained on synthetic shapes: it draws 64x64 circles, squares, triangles and diamonds in ' +
  'red, green, blue, yellow, purple or orange, and answers what colour, shape, how many, where';

// The shipped demo checkpoint's folder: pass it to loadModel().
export function demoModelDir(): string {
  return path.join(packageRoot, 'models', DEMO_MODEL_NAME);
}
