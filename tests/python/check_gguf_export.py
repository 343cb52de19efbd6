#!/usr/bin/env python3
"""Independent check of lowbit's GGUF exports with the PyPI gguf package (gguf-py).

Usage: check_gguf_export.py MANIFEST.json

The manifest (written by tests/test_export_gguf.cpp) lists pairs
  {"export": "OUT.gguf", "reference": "REF.gguf"}
where REF.gguf holds, under the same tensor names, lowbit's own dequantization of
every tensor of OUT.gguf as F32, and "required_types": the ggml type names that
must occur among the exported tensors.

For every exported file: gguf.GGUFReader opens it; the metadata keys llama.cpp
reads for its architecture are present with the types llama.cpp's loader checks;
for every tensor, gguf.quants.dequantize of its bytes equals lowbit's F32 values
bit for bit (compared as uint32, so -0.0 and NaN payloads count). Exits 0 when
every check holds, 1 otherwise, 2 when gguf cannot be imported: a missing package
is a failure, never a skip.
"""
import importlib.metadata
import json
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGUFReader, GGUFValueType
    from gguf.quants import dequantize
except ImportError as e:  # a failure: CI must have gguf (scripts/install_deps.sh)
    print(f"check_gguf_export: cannot import gguf-py ({e}); run scripts/install_deps.sh", file=sys.stderr)
    sys.exit(2)

U32, F32, STR = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING

# Keys llama.cpp's loader reads for llama/qwen2 and the value type it requires.
REQUIRED_KEYS = {
    "general.architecture": STR,
    "general.alignment": U32,
    "general.file_type": U32,
    "{arch}.context_length": U32,
    "{arch}.embedding_length": U32,
    "{arch}.block_count": U32,
    "{arch}.feed_forward_length": U32,
    "{arch}.attention.head_count": U32,
    "{arch}.attention.head_count_kv": U32,
    "{arch}.attention.layer_norm_rms_epsilon": F32,
    "{arch}.rope.freq_base": F32,
    "{arch}.rope.dimension_count": U32,
    "{arch}.vocab_size": U32,
    "tokenizer.ggml.model": STR,
}
LAYER_TENSORS = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down"]


def field_value(reader, key):
    f = reader.fields[key]
    return f.contents() if f.types[0] != GGUFValueType.ARRAY else None


def check_metadata(path, reader, errors):
    if "general.architecture" not in reader.fields:
        errors.append(f"{path}: no general.architecture")
        return
    arch = field_value(reader, "general.architecture")
    if arch not in ("llama", "qwen2"):
        errors.append(f"{path}: general.architecture {arch!r}")
    for template, vtype in REQUIRED_KEYS.items():
        key = template.format(arch=arch)
        if key not in reader.fields:
            errors.append(f"{path}: missing {key}")
        elif reader.fields[key].types[0] != vtype:
            errors.append(f"{path}: {key} is {reader.fields[key].types[0].name}, llama.cpp reads {vtype.name}")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = field_value(reader, f"{arch}.vocab_size") if f"{arch}.vocab_size" in reader.fields else None
    if tokens is None or len(tokens.data) != vocab:
        errors.append(f"{path}: tokenizer.ggml.tokens has {None if tokens is None else len(tokens.data)} "
                      f"tokens for vocab_size {vocab}")
    names = {t.name for t in reader.tensors}
    n_layers = field_value(reader, f"{arch}.block_count") or 0
    wanted = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{n}.weight" for i in range(n_layers) for n in LAYER_TENSORS]
    for name in wanted:
        if name not in names:
            errors.append(f"{path}: missing tensor {name}")
    n_embd = field_value(reader, f"{arch}.embedding_length")
    for t in reader.tensors:
        if t.name == "token_embd.weight" and [int(d) for d in t.shape] != [n_embd, vocab]:
            errors.append(f"{path}: token_embd.weight has ne {list(t.shape)}, expected [{n_embd}, {vocab}]")


def check_tensors(path, reader, reference, errors, types_seen):
    ref = {t.name: t for t in reference.tensors}
    checked = 0
    for t in reader.tensors:
        types_seen.add(t.tensor_type.name)
        r = ref.get(t.name)
        if r is None or r.tensor_type != gguf.GGMLQuantizationType.F32:
            errors.append(f"{path}: {t.name}: no F32 reference")
            continue
        ours = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).reshape(-1)
        theirs = np.asarray(r.data, dtype=np.float32).reshape(-1)
        if ours.shape != theirs.shape:
            errors.append(f"{path}: {t.name}: {ours.shape[0]} values vs lowbit's {theirs.shape[0]}")
            continue
        diff = np.nonzero(ours.view(np.uint32) != theirs.view(np.uint32))[0]
        if diff.size:
            i = int(diff[0])
            errors.append(f"{path}: {t.name} ({t.tensor_type.name}): {diff.size} of {ours.size} values differ, "
                          f"first at {i}: gguf-py {ours[i]!r} vs lowbit {theirs[i]!r}")
        checked += 1
    return checked


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        manifest = json.load(f)
    errors, types_seen, checked = [], set(), 0
    for pair in manifest["files"]:
        reader = GGUFReader(pair["export"])
        check_metadata(pair["export"], reader, errors)
        checked += check_tensors(pair["export"], reader, GGUFReader(pair["reference"]), errors, types_seen)
    missing = [t for t in manifest.get("required_types", []) if t.upper() not in types_seen]
    if missing:
        errors.append(f"types never exported: {', '.join(missing)} (seen: {', '.join(sorted(types_seen))})")
    for e in errors:
        print("check_gguf_export: " + e)
    print(f"check_gguf_export: gguf {importlib.metadata.version('gguf')}: "
          f"{checked} tensors in {len(manifest['files'])} files, types {', '.join(sorted(types_seen))}: "
          f"{'FAILED' if errors else 'all bit-exact'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
