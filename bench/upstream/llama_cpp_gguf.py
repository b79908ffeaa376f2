"""Writes the LLM of a VARGPT v1 checkpoint (a `vargpt synth` preset folder, or a real one) as a
llama.cpp GGUF file, so that llama.cpp can be timed on the very weights this package runs
(bench/RESULTS.md, "Quantized weights": the llama.cpp peer rows).

    python bench/upstream/llama_cpp_gguf.py --model DIR --out llm-f32.gguf --gguf-py LLAMA_CPP/gguf-py
    LLAMA_CPP/build/bin/llama-quantize llm-f32.gguf llm-q8_0.gguf Q8_0     # and Q4_0, BF16
    LLAMA_CPP/build/bin/llama-bench -m llm-q8_0.gguf -p 128 -n 64 -t 2

Uses llama.cpp's own `gguf` Python package (gguf-py in a llama.cpp checkout, built beside this
project and never part of it). Only `language_model.*` is written: llama.cpp runs the text model;
the vision tower and the image generator are not part of the comparison. q_proj and k_proj are
reordered from the Hugging Face rotary layout (halves) to GGUF's (interleaved pairs), as llama.cpp
expects for the llama architecture. The vocabulary comes from tokenizer.json (llama-bench feeds
token ids, so only its size and the special ids matter for timing).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def to_interleaved(w: np.ndarray, heads: int) -> np.ndarray:
    """[heads * d, K] with each head's rows as (first halves, second halves) -> pairs interleaved."""
    rows, cols = w.shape
    d = rows // heads
    return w.reshape(heads, 2, d // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--gguf-py', required=True, help="llama.cpp's gguf-py folder")
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    import gguf
    from safetensors import safe_open

    config = json.load(open(os.path.join(a.model, 'config.json')))
    text = config['text_config']
    hidden, layers = text['hidden_size'], text['num_hidden_layers']
    heads, kv_heads = text['num_attention_heads'], text.get('num_key_value_heads', text['num_attention_heads'])
    files = [os.path.join(a.model, 'model.safetensors')]
    index = os.path.join(a.model, 'model.safetensors.index.json')
    if os.path.exists(index):
        files = sorted({os.path.join(a.model, f) for f in json.load(open(index))['weight_map'].values()})

    def tensors():
        for path in files:
            with safe_open(path, framework='pt') as f:
                for name in f.keys():
                    if name.startswith('language_model.'):
                        yield name[len('language_model.'):], f.get_tensor(name).float().numpy()

    names = {'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight',
             'lm_head.weight': 'output.weight'}
    per_layer = {'input_layernorm': 'attn_norm', 'post_attention_layernorm': 'ffn_norm', 'self_attn.q_proj': 'attn_q',
                 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
                 'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down'}
    writer = gguf.GGUFWriter(a.out, 'llama')
    writer.add_name('vargpt-v1 language model')
    writer.add_context_length(text.get('max_position_embeddings', 4096))
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(text['intermediate_size'])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(float(text.get('rope_theta', 10000.0)))
    writer.add_layer_norm_rms_eps(float(text.get('rms_norm_eps', 1e-5)))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tok = json.load(open(os.path.join(a.model, 'tokenizer.json')))
    vocab_size = text['vocab_size']
    tokens = [f'[PAD{i}]' for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for piece, i in tok['model']['vocab'].items():
        if i < vocab_size:
            tokens[i] = piece
            types[i] = gguf.TokenType.BYTE if piece.startswith('<0x') and piece.endswith('>') else gguf.TokenType.NORMAL
    for added in tok.get('added_tokens', []):
        if added['id'] < vocab_size:
            tokens[added['id']] = added['content']
            types[added['id']] = gguf.TokenType.CONTROL if added.get('special') else gguf.TokenType.USER_DEFINED
    writer.add_tokenizer_model('llama')
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab_size)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    for name, w in tensors():
        if name in names:
            out = names[name]
        else:
            parts = name.split('.')  # model.layers.{i}.{module...}.weight
            i, module = int(parts[2]), '.'.join(parts[3:-1])
            out = f'blk.{i}.{per_layer[module]}.weight'
            if module == 'self_attn.q_proj':
                w = to_interleaved(w, heads)
            elif module == 'self_attn.k_proj':
                w = to_interleaved(w, kv_heads)
        writer.add_tensor(out, np.ascontiguousarray(w, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print('wrote', a.out)


if __name__ == '__main__':
    main()
