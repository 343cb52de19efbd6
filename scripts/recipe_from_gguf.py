#!/usr/bin/env python3
"""Writes a lowbit recipe that gives every tensor the llama.cpp type it has in an
existing GGUF file, so lowbit's quantizers can be compared with llama.cpp's at
exactly the same per-tensor types and file size.

Usage: scripts/recipe_from_gguf.py FILE.gguf OUT.json [--method gptq|rtn|awq] [--name NAME]

Decoder linears take --method (GPTQ by default, with importance-weighted
clipping search); token_embedding and lm_head take RTN with the MSE clip search
(lowbit quantizes them without calibration data). Tensors stored as F32/F16/BF16
in the GGUF file map to lowbit's fp32/fp16/bf16. Needs the PyPI `gguf` package.
"""
import argparse
import json
import re
import sys

import gguf

# llama.cpp tensor name -> lowbit linear name
_LAYER = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
          "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj"}
_DENSE = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


def lowbit_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "token_embedding"
    if gguf_name == "output.weight":
        return "lm_head"
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", gguf_name)
    if m and m.group(2) in _LAYER:
        return f"layers.{m.group(1)}.{_LAYER[m.group(2)]}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf_file")
    ap.add_argument("out")
    ap.add_argument("--method", default="gptq", choices=["gptq", "rtn", "awq"])
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    reader = gguf.GGUFReader(args.gguf_file)
    rules = []
    tied = True
    counts = {}
    for t in reader.tensors:
        name = lowbit_name(t.name)
        if t.name == "output.weight":
            tied = False
        if name is None:
            continue
        type_name = t.tensor_type.name
        fmt = _DENSE.get(type_name, type_name.lower().replace("_k", "_K"))
        counts[fmt] = counts.get(fmt, 0) + 1
        table = name in ("token_embedding", "lm_head")
        if type_name in _DENSE:
            rule = {"method": "none", "format": fmt}
        elif table:
            rule = {"method": "rtn", "format": fmt, "options": {"search": "mse"}}
        elif args.method == "rtn":
            rule = {"method": "rtn", "format": fmt, "options": {"search": "mse", "importance": True}}
        elif args.method == "awq":
            rule = {"method": "awq", "format": fmt, "options": {"search": "mse"}}
        else:
            rule = {"method": "gptq", "format": fmt, "options": {"damp": 0.01, "block_size": 128}}
        rules.append({"match": "^" + re.escape(name) + "$", **rule})
    if not rules:
        sys.exit(f"{args.gguf_file}: no llama tensors found")
    name = args.name or f"types-of-{args.gguf_file.rsplit('/', 1)[-1]}-{args.method}"
    mix = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    recipe = {"name": name,
              "description": f"per-tensor llama.cpp types of {args.gguf_file.rsplit('/', 1)[-1]} ({mix}), "
                             f"decoder linears by {args.method}" + ("" if tied else ", untied head"),
              "rules": rules,
              "default": {"method": "none", "format": "fp32"}}
    with open(args.out, "w") as f:
        json.dump(recipe, f, indent=1)
    print(f"{args.out}: {len(rules)} rules, {mix}")


if __name__ == "__main__":
    main()
