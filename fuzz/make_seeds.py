#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses: make_seeds.py OUT writes
OUT/<target>/ for each target of fuzz/CMakeLists.txt. Standard library only; run
from the repository root. Seeds come from the test fixtures
(tests/data/malformed, made by scripts/gen_malformed.py), the built-in recipes
(src/pipeline/recipe_builtin.cpp), fuzz/seeds/ (small files written for the
fuzzers) and small files built here."""
import glob
import json
import os
import re
import shutil
import struct
import sys


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gguf_seeds(out):
    for path in glob.glob("tests/data/malformed/*.gguf") + ["tests/data/malformed/valid/tiny.gguf"]:
        shutil.copy(path, os.path.join(out, os.path.basename(path)))


def lowbit_seeds(out):
    for path in glob.glob("fuzz/seeds/lowbit/*"):
        shutil.copy(path, out)
    # A GGUF is what a .lowbit header starts as.
    shutil.copy("tests/data/malformed/valid/tiny.gguf", os.path.join(out, "tiny.gguf"))


def safetensors(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds(out):
    f32 = struct.pack("<6f", 1, -2, 0.5, 3, 0, -0.25)
    write(out, "f32.safetensors", safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
    write(out, "mixed.safetensors", safetensors({
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
        "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]},
        "c": {"dtype": "I8", "shape": [3], "data_offsets": [16, 19]},
        "d": {"dtype": "F32", "shape": [], "data_offsets": [19, 23]}}, bytes(range(23))))
    write(out, "empty_shape.safetensors", safetensors({"z": {"dtype": "F32", "shape": [0, 5], "data_offsets": [0, 0]}}))


def tokenizer_seeds(out):
    vocab = {c: i for i, c in enumerate(["<unk>", "<s>", "</s>", "a", "b", "c", "Ġ", "ab", "Ġa", "abc", "1", "2"])}
    bpe = {"version": "1.0",
           "added_tokens": [{"id": 1, "content": "<s>", "special": True}, {"id": 2, "content": "</s>", "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": ["a b", "Ġ a", "ab c"]}}
    write(out, "byte_level.json", json.dumps(bpe))
    seq = dict(bpe)
    seq["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]}
    seq["model"] = dict(bpe["model"], merges=[["a", "b"], ["Ġ", "a"]], ignore_merges=True)
    write(out, "sequence_split.json", json.dumps(seq))
    spm = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                               {"type": "Replace", "pattern": {"String": " "},
                                                                "content": "▁"}]},
           "pre_tokenizer": None,
           "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
           "model": {"type": "BPE", "byte_fallback": True, "fuse_unk": True, "unk_token": "<unk>",
                     "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "▁": 4, "a": 5, "▁a": 6},
                     "merges": ["▁ a"]}}
    write(out, "spm_bpe.json", json.dumps(spm))


def recipe_seeds(out):
    text = open("src/pipeline/recipe_builtin.cpp", encoding="utf-8").read()
    for i, body in enumerate(re.findall(r'R"json\((.*?)\)json"', text, re.S)):
        write(out, f"builtin_{i:02d}.json", body)
    write(out, "rules.json", json.dumps({
        "name": "r", "true_sequential": True,
        "rules": [{"match": "^layers\\.[0-9]+\\.(q|k)_proj$", "method": "gptq", "format": "int4_g128_asym",
                   "options": {"damp": 0.02, "act_order": True, "lorc_rank": 4}, "fallback": ["int8_pc"]},
                  {"match": "down_proj", "method": "rtn", "format": "nvfp4", "act": "nvfp4"}],
        "smooth": {"alpha": 0.5}, "rotation": {"seed": 1, "online_down": True},
        "default": {"method": "awq", "format": "int4_g128_asym", "options": {"search": "mse", "awq_grid": 10}}}))


def kv_config_seeds(out):
    write(out, "plain.json", json.dumps({"format": "lowbit-kv-config", "version": 1, "spec": "k4v4-kivi-r128"}))
    write(out, "layers.json", json.dumps({"format": "lowbit-kv-config", "version": 1, "spec": "k3v3-g32-sink4",
                                          "layers": [{"k_bits": 4, "v_bits": 2}, {"k_bits": 8, "v_bits": 8}],
                                          "calibration": {"note": "x"}}))
    write(out, "nuq.json", json.dumps({"format": "lowbit-kv-config", "version": 1, "spec": "k2v2-nuq",
                                       "codebooks": [{"key": [-1.5, -0.5, 0.5, 1.5], "value": [-1, -0.3, 0.3, 1]}]}))
    write(out, "reorder.json", json.dumps({"format": "lowbit-kv-config", "version": 1,
                                           "spec": "k2v2-nuq-qnorm-rotg2-reorder",
                                           "key_order": [[3, 0, 2, 1], [0, 1, 2, 3]]}))
    write(out, "spec.txt", "k4v2-kivi-b32-r64-sparse1-prerope-rot")


def main():
    out = sys.argv[1]
    for target, make in [("gguf", gguf_seeds), ("lowbit", lowbit_seeds), ("safetensors", safetensors_seeds),
                         ("tokenizer_json", tokenizer_seeds), ("recipe", recipe_seeds),
                         ("kv_config", kv_config_seeds)]:
        folder = os.path.join(out, target)
        os.makedirs(folder, exist_ok=True)
        make(folder)


if __name__ == "__main__":
    main()
