"""Writes a trained demo model as a Hugging Face folder in VARGPT v1's released layout:
config.json (model_type vargpt_llava), model.safetensors, the Llama-style tokenizer files, the
llava-1.5 chat template, the CLIP preprocessor and generation_config.json.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import save_file

import tokenizer as demo_tokenizer
import world
from model import CLIP_MEAN, CLIP_STD, DemoConfig, DemoModel
from train_joint import make_config

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

IMAGE_GEN = ['<|image_gen_start|>', '<|image_gen_end|>', '<|image_gen_pad|>']


def special_tokens(cfg: DemoConfig) -> dict:
    return {
        'image_gen_start': IMAGE_GEN[0], 'image_gen_start_token_id': cfg.gen_start,
        'image_gen_end': IMAGE_GEN[1], 'image_gen_end_token_id': cfg.gen_end,
        'image_gen_pad': IMAGE_GEN[2], 'image_gen_pad_token_id': cfg.gen_pad,
    }


def config_json(cfg: DemoConfig, dtype: str) -> dict:
    return {
        'architectures': ['VARGPTLlavaForConditionalGeneration'],
        'model_type': 'vargpt_llava',
        'hidden_size': cfg.llm_hidden,
        'ignore_index': -100,
        'image_seq_length': cfg.image_tokens,
        'image_token_index': cfg.image_token,
        'pad_token_id': cfg.pad_token,
        'padding_side': 'left',
        'projector_hidden_act': 'gelu',
        'special_tokens': special_tokens(cfg),
        'text_config': {
            'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'attention_bias': False,
            'attention_dropout': 0.0, 'bos_token_id': 1, 'eos_token_id': 2, 'head_dim': cfg.llm_hidden // cfg.llm_heads,
            'hidden_act': 'silu', 'hidden_size': cfg.llm_hidden, 'initializer_range': 0.02,
            'intermediate_size': cfg.llm_intermediate, 'max_position_embeddings': cfg.llm_max_positions,
            'mlp_bias': False, 'num_attention_heads': cfg.llm_heads, 'num_hidden_layers': cfg.llm_layers,
            'num_key_value_heads': cfg.llm_heads, 'pad_token_id': None, 'rms_norm_eps': 1e-5, 'rope_scaling': None,
            'rope_theta': 10000.0, 'tie_word_embeddings': False, 'use_cache': True, 'vocab_size': cfg.vocab,
        },
        'tie_word_embeddings': False,
        'torch_dtype': dtype,
        'vision_config': {
            'model_type': 'clip_vision_model', 'attention_dropout': 0.0, 'hidden_act': 'quick_gelu',
            'hidden_size': cfg.vis_hidden, 'image_size': cfg.image_size, 'intermediate_size': cfg.vis_intermediate,
            'layer_norm_eps': 1e-5, 'num_attention_heads': cfg.vis_heads, 'num_channels': 3,
            'num_hidden_layers': cfg.vis_layers, 'patch_size': cfg.patch_size, 'projection_dim': cfg.vis_hidden,
        },
        'vision_feature_layer': -1,
        'vision_feature_select_strategy': 'default',
        'vocab_size': cfg.vocab,
    }


def entry(content: str) -> dict:
    return {'content': content, 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False}


def write_folder(model: DemoModel, out: str, dtype: str, gen_defaults: dict, extra_colours: bool = False) -> None:
    cfg = model.cfg
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for name, t in model.state_dict().items():
        if name.endswith('position_ids') or name.endswith('inv_freq'):
            continue
        if name.startswith('vision_tower.') and not name.startswith('vision_tower.vision_model.'):
            # transformers 5 keeps CLIPVisionModel's weights without its inner prefix; the released
            # checkpoints (transformers 4.x) name them vision_tower.vision_model.*.
            name = 'vision_tower.vision_model.' + name[len('vision_tower.'):]
        t = t.detach().contiguous()
        if t.is_floating_point():
            t = t.to(torch.bfloat16 if dtype == 'bfloat16' else torch.float32)
        tensors[name] = t.clone()
    save_file(tensors, os.path.join(out, 'model.safetensors'), metadata={'format': 'pt'})

    def dump(name: str, obj) -> None:
        with open(os.path.join(out, name), 'w') as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write('\n')

    dump('config.json', config_json(cfg, dtype))
    dump('tokenizer.json', demo_tokenizer.build(extra_colours))
    dump('tokenizer_config.json', {
        'add_bos_token': True, 'add_eos_token': False,
        'added_tokens_decoder': {str(i): {**entry(t), 'special': True} for i, t in enumerate(demo_tokenizer.SPECIAL)},
        'additional_special_tokens': IMAGE_GEN, 'bos_token': '<s>', 'clean_up_tokenization_spaces': False,
        'eos_token': '</s>', 'legacy': False, 'model_max_length': cfg.llm_max_positions, 'pad_token': '<pad>',
        'padding_side': 'left', 'processor_class': 'VARGPTLlavaProcessor', 'tokenizer_class': 'LlamaTokenizer',
        'unk_token': '<unk>', 'use_default_system_prompt': False})
    dump('special_tokens_map.json', {
        'additional_special_tokens': [entry(t) for t in IMAGE_GEN], 'bos_token': entry('<s>'),
        'eos_token': entry('</s>'), 'pad_token': entry('<pad>'), 'unk_token': entry('<unk>')})
    dump('chat_template.json', {'chat_template': CHAT_TEMPLATE})
    dump('preprocessor_config.json', {
        'crop_size': {'height': cfg.image_size, 'width': cfg.image_size}, 'do_center_crop': True,
        'do_convert_rgb': True, 'do_normalize': True, 'do_rescale': True, 'do_resize': True,
        'image_mean': list(CLIP_MEAN), 'image_processor_type': 'CLIPImageProcessor', 'image_std': list(CLIP_STD),
        'processor_class': 'VARGPTLlavaProcessor', 'resample': 3, 'rescale_factor': 1 / 255,
        'size': {'shortest_edge': cfg.image_size}})
    dump('processor_config.json', {'image_token': '<image>', 'patch_size': cfg.patch_size,
                                   'processor_class': 'VARGPTLlavaProcessor',
                                   'vision_feature_select_strategy': 'default'})
    dump('generation_config.json', {
        'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': cfg.pad_token,
        'allowed_special_tokens': IMAGE_GEN, 'special_tokens': special_tokens(cfg), **gen_defaults})
    dump(SELF_CHECK_FILE, self_check(extra_colours))


SELF_CHECK_FILE = 'self_check.json'


def self_check(extra_colours: bool = False) -> dict:
    """What the CLI asks the model about its own drawing (lib/self-check.ts): the colour and the
    shape, each checked where the request names exactly one of the answers."""
    colours = world.PALETTE if extra_colours else world.COLOURS
    return {'questions': [{'question': world.QUESTIONS['colour'][0], 'answers': list(colours)},
                          {'question': world.QUESTIONS['shape'][0], 'answers': list(world.SHAPES)}]}


def load_trained(checkpoint: str, vqvae: str | None = None) -> DemoModel:
    """The joint checkpoint; vqvae replaces its VQ-VAE (the decoder fine-tuned after the codes were
    fixed: same encoder, codebook and phi, so the generator's codes decode as trained)."""
    tok = demo_tokenizer.load()
    model = DemoModel(make_config(tok))
    model.load_state_dict(torch.load(checkpoint)['model'])
    if vqvae:
        state = torch.load(vqvae)
        for name, t in model.vae_local.state_dict().items():
            if not (name.startswith('decoder.') or name.startswith('post_quant_conv.')):
                assert torch.equal(t, state[name]), f'{vqvae}: {name} differs from the checkpoint the generator was trained on'
        model.vae_local.load_state_dict(state)
    return model.eval()


def load_exported(folder: str) -> DemoModel:
    """A model folder written by write_folder, back as a DemoModel (bfloat16 weights widened to f32)."""
    from safetensors.torch import load_file
    with open(os.path.join(folder, 'config.json'), encoding='utf-8') as f:
        if 'vargpt_quantization' in json.load(f):
            raise SystemExit(f'{folder} is a quantized copy (vargpt quantize); the trainer reads the bf16 master, '
                             'training/demo/model-bf16')
    model = DemoModel(make_config(demo_tokenizer.load()))
    state = {}
    for name, t in load_file(os.path.join(folder, 'model.safetensors')).items():
        if name.startswith('vision_tower.vision_model.'):
            name = 'vision_tower.' + name[len('vision_tower.vision_model.'):]
        state[name] = t.float() if t.is_floating_point() else t
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, f'{folder}: unexpected tensors {unexpected}'
    assert all(m.endswith('position_ids') or m.endswith('inv_freq') for m in missing), f'{folder}: missing {missing}'
    return model.eval()


def load_vqvae_state(path: str) -> dict:
    """The VQ-VAE's state dict from an exported model folder, or from a state dict file."""
    if os.path.isdir(path):
        return load_exported(path).vae_local.state_dict()
    return torch.load(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--checkpoint', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--vqvae', help='a VQ-VAE state dict whose decoder replaces the checkpoint\'s')
    ap.add_argument('--dtype', choices=['float32', 'bfloat16'], default='bfloat16')
    ap.add_argument('--cfg', type=float, default=None, help='image_cfg default written to generation_config.json')
    ap.add_argument('--top-k', type=int, default=None)
    ap.add_argument('--top-p', type=float, default=None)
    ap.add_argument('--extra-colour-words', action='store_true',
                    help="the tokenizer with world.EXTRA_COLOURS' words (a model trained with train_joint.py --extra-colours)")
    a = ap.parse_args()
    defaults = {'max_new_tokens': 32}
    if a.cfg is not None:
        defaults['image_cfg'] = a.cfg
    if a.top_k is not None:
        defaults['image_top_k'] = a.top_k
    if a.top_p is not None:
        defaults['image_top_p'] = a.top_p
    write_folder(load_trained(a.checkpoint, a.vqvae), a.out, a.dtype, defaults, a.extra_colour_words)
    print('wrote', a.out)


if __name__ == '__main__':
    main()
