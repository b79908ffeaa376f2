"""The demo's tokenizer: Llama's tokenizer.json pipeline (SentencePiece-style '▁' word marks, BPE,
<s> prepended) over the world's vocabulary, so each world word is one token.

Merges only ever extend a word-initial piece by one character ('▁r' + 'e' -> '▁re'), so no merge
can join two words and every listed word encodes as exactly one token; any other text still
encodes, character by character (characters outside the alphabet become <unk>).
"""
from __future__ import annotations

import json
import string

import world

SPECIAL = ['<unk>', '<s>', '</s>', '<image>', '<pad>', '<|image_gen_start|>', '<|image_gen_end|>', '<|image_gen_pad|>']
ALPHABET = ['▁'] + list(string.ascii_lowercase) + list(string.ascii_uppercase) + list(string.digits) + list("?.,:;'!-()\n")


def build(extra_colours: bool = False) -> dict:
    """extra_colours adds world.EXTRA_COLOURS' words after the world's, so every other id stays as
    it is (and the vocabulary within the model's 320 rows)."""
    vocab: dict[str, int] = {}
    for t in SPECIAL + ALPHABET:
        vocab[t] = len(vocab)
    merges: list[str] = []
    for word in world.vocabulary() + (list(world.EXTRA_COLOURS) if extra_colours else []):
        piece = '▁'
        for ch in word:
            nxt = piece + ch
            if nxt not in vocab:
                vocab[nxt] = len(vocab)
                merges.append(f'{piece} {ch}')
            piece = nxt
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [
            {'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False,
             'special': True} for i, t in enumerate(SPECIAL)],
        'normalizer': {'type': 'Sequence', 'normalizers': [
            {'type': 'Prepend', 'prepend': '▁'},
            {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'}]},
        'pre_tokenizer': None,
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
            'pair': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                     {'SpecialToken': {'id': '<s>', 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
            'special_tokens': {'<s>': {'id': '<s>', 'ids': [1], 'tokens': ['<s>']}}},
        'decoder': {'type': 'Sequence', 'decoders': [
            {'type': 'Replace', 'pattern': {'String': '▁'}, 'content': ' '},
            {'type': 'Fuse'},
            {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': True, 'byte_fallback': False, 'vocab': vocab,
                  'merges': merges},
    }


def load(extra_colours: bool = False):
    from tokenizers import Tokenizer
    return Tokenizer.from_str(json.dumps(build(extra_colours)))


if __name__ == '__main__':
    tok = load()
    print(len(build()['model']['vocab']), 'tokens')
    for text in ('USER: draw a red circle ASSISTANT:', 'USER: <image>\nwhat colour is the shape? ASSISTANT: red'):
        enc = tok.encode(text)
        print(enc.ids, enc.tokens)
