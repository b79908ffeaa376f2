// Sampling defaults seeded from a checkpoint's generation_config.json, for every family: the
// family's table gives the values a file leaves out, and each value a file sets must pass the
// option's own check (options.ts rules), else the load fails naming the file and key.
import type { JsonObject } from '../checkpoint-config.js';
import { Reader } from '../checkpoint-config.js';
import type { Rule } from '../options.js';
import { TEXT_RULES, checkDefault } from '../options.js';
import type { ImageDefaults, TextDefaults } from './types.js';

type Keys<T> = { readonly [K in keyof T]: string };
type Rules<T> = { readonly [K in keyof T]: Rule };

// generation_config.json keys, as transformers' GenerationConfig names them.
const TEXT_KEYS: Keys<TextDefaults> = {
  maxNewTokens: 'max_new_tokens',
  temperature: 'temperature',
  topK: 'top_k',
  topP: 'top_p',
  repetitionPenalty: 'repetition_penalty',
};

// What GenerationConfig assumes for the sampling keys a file leaves out when it sets do_sample.
const SAMPLING_FALLBACKS = { temperature: 1, topK: 50, topP: 1 } as const;

// Image sampling has no transformers key; these are this package's.
export const IMAGE_KEYS: Keys<ImageDefaults> = { cfg: 'image_cfg', topK: 'image_top_k', topP: 'image_top_p' };

function reader<T>(gen: JsonObject, file: string, keys: Keys<T>, rules: Rules<T>) {
  const r = new Reader(file, gen);
  return (key: keyof T, fallback: number): number => {
    const jsonKey = keys[key];
    return r.has(jsonKey) ? checkDefault(r.number(jsonKey), rules[key], `${file}: "${jsonKey}"`) : fallback;
  };
}

// As transformers reads the file: without do_sample (or with do_sample false) decoding is greedy
// and temperature, top_k and top_p do not apply; repetition_penalty and max_new_tokens always do.
export function textDefaultsFrom(spec: TextDefaults, gen: JsonObject | null, file: string): TextDefaults {
  if (!gen) return { ...spec };
  const read = reader(gen, file, TEXT_KEYS, TEXT_RULES);
  const sample = new Reader(file, gen).bool('do_sample', false);
  return {
    maxNewTokens: read('maxNewTokens', spec.maxNewTokens),
    temperature: sample ? read('temperature', SAMPLING_FALLBACKS.temperature) : 0,
    topK: sample ? read('topK', SAMPLING_FALLBACKS.topK) : spec.topK,
    topP: sample ? read('topP', SAMPLING_FALLBACKS.topP) : spec.topP,
    repetitionPenalty: read('repetitionPenalty', spec.repetitionPenalty),
  };
}

export function imageDefaultsFrom(spec: ImageDefaults, gen: JsonObject | null, file: string, rules: Rules<ImageDefaults>): ImageDefaults {
  if (!gen) return { ...spec };
  const read = reader(gen, file, IMAGE_KEYS, rules);
  return { cfg: read('cfg', spec.cfg), topK: read('topK', spec.topK), topP: read('topP', spec.topP) };
}
