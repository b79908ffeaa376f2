// The runtime side of check_runtime.py: loads the exported folder through the package's public
// API, replays the trainer's drawing and question with trace: true, and compares every recorded
// tensor. Tolerance: both sides compute in float32; the runtime sums in another order, so logits
// agree to a few ulps of their magnitude: max |diff| <= 1e-4 * max |expected| + 1e-4.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel } = await import(path.join(here, '..', '..', 'dist', 'index.js'));

const expected = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const dir = path.dirname(process.argv[2]);
const read = (t) => {
  const bytes = readFileSync(path.join(dir, t.file));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
};

let failures = 0;
function compare(name, got, want) {
  const g = got instanceof Float32Array ? got : Float32Array.from(got);
  if (g.length !== want.length) {
    console.log(`FAIL ${name}: ${g.length} values, expected ${want.length}`);
    failures++;
    return;
  }
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < g.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(g[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  const bound = 1e-4 * maxRef + 1e-4;
  const ok = maxDiff <= bound;
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: max |diff| ${maxDiff.toExponential(2)} (bound ${bound.toExponential(2)}, max |ref| ${maxRef.toFixed(3)})`);
}
function sameIds(name, got, want) {
  const ok = got.length === want.length && got.every((v, i) => v === want[i]);
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${ok ? `${want.length} ids equal` : `runtime ${JSON.stringify([...got])} trainer ${JSON.stringify(want)}`}`);
}

const model = await loadModel(expected.model);
try {
  const ask = await model.ask(expected.ask.image, expected.ask.question, { maxNewTokens: 1, trace: true });
  sameIds('ask prompt ids', model.tokenizer.encode(expected.ask.prompt), expected.ask.prompt_ids);
  compare('ask.prefillLogits', ask.trace.prefillLogits.data, read(expected.tensors['ask.prefillLogits']));

  const draw = expected.draw;
  const noiseAll = read(draw.noise);
  const hidden = model.info.llm.hiddenSize;
  const noise = [];
  let row = 0;
  for (const idx of draw.indices) {
    noise.push(noiseAll.slice(row * hidden, (row + idx.length) * hidden));
    row += idx.length;
  }
  const indices = draw.indices.map((a) => Int32Array.from(a));
  sameIds('draw prompt ids', [...model.tokenizer.encode(draw.prompt_text), model.info.imageGenStartId], draw.input_ids);
  const drawn = await model.generateImage(draw.prompt, { replay: { indices, noise }, trace: true });
  for (const [name, t] of Object.entries(expected.tensors)) {
    if (!/^s\d+\.logits(Cond|Uncond)$/.test(name) && name !== 'image') continue;
    compare(name, drawn.trace[name].data, read(t));
  }
} finally {
  await model.dispose();
}
console.log(failures === 0 ? 'runtime matches the trainer' : `${failures} mismatches`);
process.exit(failures === 0 ? 0 : 1);
