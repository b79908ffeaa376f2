import { readFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { ChatTemplate, expandImagePlaceholders, imageTokenCount } from '../../lib/chat-template.js';
import { VargptTokenizer } from '../../lib/tokenizer.js';
import type { ChatMessage } from '../../lib/types.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { asNumbers, fixtureExpected, fixtureModel, readJson, readSafetensors } from '../helpers/fixtures.js';
import { fixturesMissing } from '../helpers/paths.js';

// The fixture's template and tokenizer, read in the hook where the fixtures are: without them the
// tests on the template skip, and the placeholder and parse-error tests still run.
let source: string;
const tokens = { image: '<image>', imageGenStart: '<|image_gen_start|>', imageGenEnd: '<|image_gen_end|>' };
const png = Buffer.from('not decoded here');

describe('chat template (fixture chat_template.json via @huggingface/jinja)', () => {
  let template: ChatTemplate;
  let tok: VargptTokenizer;
  beforeAll(async () => {
    if (fixturesMissing !== null) return;
    source = (JSON.parse(readFileSync(path.join(fixtureModel, 'chat_template.json'), 'utf8')) as { chat_template: string }).chat_template;
    template = new ChatTemplate(source, tokens);
    tok = await VargptTokenizer.fromDir(fixtureModel);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('renders the fixture conversation to the fixture prompt and its input_ids'), () => {
    const u = readJson<{ prompt: string; conversation: Array<{ role: 'user'; content: Array<{ type: 'text' | 'image'; text?: string }> }> }>(
      path.join(fixtureExpected, 'understanding.json'),
    );
    // The fixture lists the text before the image; the template writes images first.
    const messages: ChatMessage[] = u.conversation.map((m) => ({
      role: m.role,
      content: m.content.map((p) => (p.type === 'text' ? { type: 'text' as const, text: p.text ?? '' } : { type: 'image' as const, image: png })),
    }));
    const { prompt, images } = template.render(messages);
    expect(prompt).toBe(u.prompt);
    expect(images).toEqual([png]);
    const expanded = expandImagePlaceholders(prompt, '<image>', images.length, imageTokenCount(336, 14, 'default'));
    const expected = asNumbers(readSafetensors(path.join(fixtureExpected, 'understanding.safetensors')).get('input_ids')!);
    expect(tok.encode(expanded)).toEqual(expected);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('renders the generation demo prompt from a plain string content'), () => {
    const { prompt, images } = template.render([{ role: 'user', content: 'Please design a drawing of a butterfly on a flower.' }]);
    expect(prompt).toBe('USER: Please design a drawing of a butterfly on a flower. ASSISTANT:');
    expect(images).toEqual([]);
    const g = readJson<{ prompt: string }>(path.join(fixtureExpected, 'generation.json'));
    expect(prompt).toBe(g.prompt);
    const ids = asNumbers(readSafetensors(path.join(fixtureExpected, 'generation.safetensors')).get('input_ids')!);
    expect(tok.encode(prompt)).toEqual(ids);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('renders system and multi-turn conversations, and an assistant turn that drew an image'), () => {
    const drawn = { width: 2, height: 1, data: new Uint8Array(6) };
    const { prompt, images } = template.render([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Draw a cat.' },
      { role: 'assistant', content: [{ type: 'text', text: 'Here is a cat.' }, { type: 'image', image: drawn }] },
      { role: 'user', content: [{ type: 'image', image: png }, { type: 'text', text: 'And this one?' }] },
    ]);
    expect(prompt).toBe(
      'Be brief. USER: Draw a cat. ASSISTANT: Here is a cat.<|image_gen_start|><|image_gen_end|> USER: <image>\nAnd this one? ASSISTANT:',
    );
    // The drawn image is not fed back as pixels: only the user's image counts.
    expect(images).toEqual([png]);
    const ids = tok.encode(prompt);
    expect(ids.filter((id) => id === 32002)).toHaveLength(1);
    expect(ids.filter((id) => id === 32003)).toHaveLength(1);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('marks an image-only assistant turn with the marker alone'), () => {
    const { prompt } = template.render([
      { role: 'user', content: 'Draw.' },
      { role: 'assistant', content: [{ type: 'image', image: png }] },
    ], { addGenerationPrompt: false });
    expect(prompt).toBe('USER: Draw. ASSISTANT: <|image_gen_start|><|image_gen_end|> ');
  });

  it('expands every placeholder and checks the count', () => {
    expect(expandImagePlaceholders('a<image>b<image>', '<image>', 2, 3)).toBe('a<image><image><image>b<image><image><image>');
    expect(() => expandImagePlaceholders('a<image>', '<image>', 2, 3)).toThrow(/1 image placeholder.*2 image/);
    expect(imageTokenCount(336, 14, 'default')).toBe(576);
    expect(imageTokenCount(336, 14, 'full')).toBe(577);
    expect(imageTokenCount(224, 14, 'default')).toBe(256);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('rejects unknown roles, bad content and misplaced images with clear errors'), () => {
    const bad = (messages: unknown) => () => template.render(messages as ChatMessage[]);
    expect(bad([{ role: 'bot', content: 'hi' }])).toThrow(/messages\[0\]\.role "bot" is not a known role; use one of "system", "user", "assistant"/);
    expect(bad([{ role: 'user', content: 'x' }, { content: 'hi' }])).toThrow(/messages\[1\]\.role undefined/);
    expect(bad([])).toThrow(/messages is empty/);
    expect(bad('hello')).toThrow(/messages must be an array/);
    expect(bad([null])).toThrow(/messages\[0\] must be an object/);
    expect(bad([{ role: 'user', content: 42 }])).toThrow(/content must be a string or an array of parts, got number/);
    expect(bad([{ role: 'user', content: [{ type: 'video' }] }])).toThrow(/content\[0\]\.type "video" is not "text" or "image"/);
    expect(bad([{ role: 'user', content: [{ type: 'text', text: 5 }] }])).toThrow(/content\[0\]\.text must be a string/);
    expect(bad([{ role: 'user', content: [{ type: 'image' }] }])).toThrow(/content\[0\]\.image is missing/);
    expect(bad([{ role: 'system', content: [{ type: 'image', image: png }] }])).toThrow(/system message cannot hold an image/);
    expect(bad([{ role: 'user', content: 'look: <image>' }])).toThrow(/contains the image placeholder "<image>"/);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('refuses image parts when the model has no image placeholder'), () => {
    const textOnly = new ChatTemplate(source, { image: null, imageGenStart: null, imageGenEnd: null });
    expect(() => textOnly.render([{ role: 'user', content: [{ type: 'image', image: png }] }])).toThrow(/cannot read images/);
  });

  it('reports a template that does not parse', () => {
    expect(() => new ChatTemplate('{% for %}', tokens)).toThrow(/chat template does not parse/);
  });
});
