#!/usr/bin/env python3
"""Writes a Hugging Face Llama checkpoint of a known model's shape with random
weights: config.json, one BF16 model.safetensors, and (optionally) a copied
tokenizer. For memory and speed tests of a model too large to download here.

  scripts/make_shaped_checkpoint.py OUT_DIR [--shape tinyllama-1.1b] [--seed 0]
                                    [--tokenizer path/to/tokenizer.model]

Weights are N(0, 0.02²) (norms 1), drawn per tensor from a seeded generator,
converted to BF16 by rounding to nearest even; the file is written tensor by
tensor (peak memory: one FP32 tensor), to OUT_DIR/model.safetensors.tmp, then
renamed.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

SHAPES = {
    # TinyLlama-1.1B (Llama-2 architecture, grouped-query attention): 1.10 B parameters.
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                           max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0),
    # A small shape for tests of this script.
    "tiny": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=32000, max_position_embeddings=256,
                 rms_norm_eps=1e-5, rope_theta=10000.0),
}


def tensors(cfg):
    """(name, shape) in file order; shapes are [out, in] as Hugging Face stores them."""
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    yield "model.embed_tokens.weight", (v, d)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (d,)
        yield p + "self_attn.q_proj.weight", (d, d)
        yield p + "self_attn.k_proj.weight", (kv, d)
        yield p + "self_attn.v_proj.weight", (kv, d)
        yield p + "self_attn.o_proj.weight", (d, d)
        yield p + "post_attention_layernorm.weight", (d,)
        yield p + "mlp.gate_proj.weight", (f, d)
        yield p + "mlp.up_proj.weight", (f, d)
        yield p + "mlp.down_proj.weight", (d, f)
    yield "model.norm.weight", (d,)
    yield "lm_head.weight", (v, d)


def to_bf16(x):
    """FP32 -> BF16 bits, round to nearest even (no NaN in the input)."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shape", default="tinyllama-1.1b", choices=sorted(SHAPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", help="tokenizer.model or tokenizer.json copied into OUT")
    a = ap.parse_args()
    cfg = dict(SHAPES[a.shape])
    os.makedirs(a.out, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt", "lowbit": f"random {a.shape} seed {a.seed}"}}, 0
    specs = list(tensors(cfg))
    for name, shape in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(a.seed)
    tmp = os.path.join(a.out, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape in specs:
            if len(shape) == 1:
                x = np.ones(shape, np.float32)
            else:
                x = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            f.write(to_bf16(x).tobytes())
    os.replace(tmp, os.path.join(a.out, "model.safetensors"))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
              "eos_token_id": 2, **cfg}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.out, os.path.basename(a.tokenizer)))
    params = sum(int(np.prod(s)) for _, s in specs)
    print(f"{a.out}: {a.shape}, {params / 1e9:.3f} B parameters, {offset / 1e9:.2f} GB BF16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
