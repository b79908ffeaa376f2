// One BLIP3-o image at the checkpoint's full size, with few Euler steps, and the 50-step time it
// implies: stage 1 as the spec runs it (30 flow steps for the prompt and for the " " negative),
// `steps` (default 2) of stage 2's Euler steps, the VAE decode; then measured stages + 50 x the
// mean UNet step. A 1024x1024 image with 50 steps takes over an hour on a small CPU;
// the steps add no memory, so the peak RSS is the image's.
//
//   node bench/blip3o_full_size.mjs <checkpoint dir> [steps]
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { loadModel } = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);

const dir = process.argv[2];
if (!dir) throw new Error('usage: node bench/blip3o_full_size.mjs <checkpoint dir> [steps]');
const steps = Number(process.argv[3] ?? 2);
let t0 = performance.now();
const model = await loadModel(dir, { device: 'cpu' });
const load = (performance.now() - t0) / 1000;
t0 = performance.now();
const reply = await model.generateImage('A photo of cute cat', { seed: 1, steps, profile: true });
const wall = (performance.now() - t0) / 1000;
const p = reply.profile;
const unetStep = p.unet / p.unetSteps;
const fiftySteps = p.llm + p.flow + (p.negative ?? 0) + 50 * unetStep + p.vae;
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      loadavg: os.loadavg(),
      checkpoint: dir,
      image: model.info.image,
      loadSeconds: load,
      wallSeconds: wall,
      size: [reply.image.width, reply.image.height],
      profile: p,
      unetStepSeconds: unetStep,
      estimated50StepSeconds: fiftySteps,
      estimated50StepCachedNegativeSeconds: fiftySteps - (p.negative ?? 0),
      peakRssGiB: process.resourceUsage().maxRSS / 2 ** 20,
    },
    null,
    1,
  ),
);
await model.dispose();
