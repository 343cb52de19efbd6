#!/usr/bin/env python3
"""Writes tests/data/malformed/: small model files that lowbit must reject with a
one-line error (and one valid control model that must load). Standard library
only; run from the repository root. The files are committed; rerun after changing
this script."""
import json
import math
import os
import shutil
import struct

OUT = "tests/data/malformed"

# A tiny llama: dim 8, 1 layer, 2 heads (head_dim 4), 1 kv head, ffn 16, vocab 8.
DIM, FFN, HEADS, KV_HEADS, VOCAB = 8, 16, 2, 1, 8
HEAD_DIM = DIM // HEADS


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gguf_string(key) + struct.pack("<I", vtype) + payload


def u32(key, v):
    return kv(key, 4, struct.pack("<I", v))


def f32(key, v):
    return kv(key, 6, struct.pack("<f", v))


def string(key, v):
    return kv(key, 8, gguf_string(v))


def str_array(key, values):
    return kv(key, 9, struct.pack("<IQ", 8, len(values)) + b"".join(gguf_string(v) for v in values))


def f32_array(key, values):
    return kv(key, 9, struct.pack("<IQ", 6, len(values)) + b"".join(struct.pack("<f", v) for v in values))


def i32_array(key, values):
    return kv(key, 9, struct.pack("<IQ", 5, len(values)) + b"".join(struct.pack("<i", v) for v in values))


def tensors(q_rows=HEADS * HEAD_DIM, poison=None):
    """(name, dims ne0-first, values) for every tensor of the tiny model."""
    def values(n, seed):
        return [math.sin(seed * 7.1 + i * 0.37) * 0.3 for i in range(n)]
    kv_dim = KV_HEADS * HEAD_DIM
    spec = [
        ("token_embd.weight", [DIM, VOCAB]),
        ("blk.0.attn_norm.weight", [DIM]),
        ("blk.0.attn_q.weight", [DIM, q_rows]),
        ("blk.0.attn_k.weight", [DIM, kv_dim]),
        ("blk.0.attn_v.weight", [DIM, kv_dim]),
        ("blk.0.attn_output.weight", [HEADS * HEAD_DIM, DIM]),
        ("blk.0.ffn_norm.weight", [DIM]),
        ("blk.0.ffn_gate.weight", [DIM, FFN]),
        ("blk.0.ffn_up.weight", [DIM, FFN]),
        ("blk.0.ffn_down.weight", [FFN, DIM]),
        ("output_norm.weight", [DIM]),
    ]
    out = []
    for seed, (name, dims) in enumerate(spec):
        n = 1
        for d in dims:
            n *= d
        vals = values(n, seed)
        if poison == name:
            vals[n // 2] = float("nan")
        out.append((name, dims, vals))
    return out


def gguf(arch="llama", magic=b"GGUF", version=3, q_rows=HEADS * HEAD_DIM, poison=None, offset_shift=0,
         truncate=None, counts=None, extra_tensor=None):
    """counts: {key suffix: u32} replacing or adding "{arch}.<suffix>" integers.
    extra_tensor: (name, dims) of an f32 tensor listed in the header without data."""
    tokens = ["<unk>", "<s>", "</s>", "\u2581a", "\u2581b", "a", "b", "\u2581"]
    meta = [
        string("general.architecture", arch),
        u32(f"{arch}.block_count", 1),
        u32(f"{arch}.embedding_length", DIM),
        u32(f"{arch}.feed_forward_length", FFN),
        u32(f"{arch}.attention.head_count", HEADS),
        u32(f"{arch}.attention.head_count_kv", KV_HEADS),
        u32(f"{arch}.context_length", 64),
        f32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        string("tokenizer.ggml.model", "llama"),
        str_array("tokenizer.ggml.tokens", tokens),
        f32_array("tokenizer.ggml.scores", [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0]),
        i32_array("tokenizer.ggml.token_type", [2, 3, 3, 1, 1, 1, 1, 1]),
        u32("tokenizer.ggml.bos_token_id", 1),
        u32("tokenizer.ggml.eos_token_id", 2),
    ]
    for suffix, value in (counts or {}).items():
        key = f"{arch}.{suffix}".encode()
        meta = [m for m in meta if not m.startswith(struct.pack("<Q", len(key)) + key)]
        meta.append(u32(f"{arch}.{suffix}", value))
    ts = tensors(q_rows, poison)
    infos = b""
    data = b""
    for name, dims, vals in ts:
        pad = (-len(data)) % 32
        data += b"\0" * pad
        offset = len(data) + (offset_shift if name == ts[-1][0] else 0)
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, offset)
        data += b"".join(struct.pack("<f", v) for v in vals)
    n_tensors = len(ts)
    if extra_tensor:
        name, dims = extra_tensor
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, 0)
        n_tensors += 1
    header = magic + struct.pack("<IQQ", version, n_tensors, len(meta)) + b"".join(meta) + infos
    header += b"\0" * ((-len(header)) % 32)
    blob = header + data
    return blob[:truncate] if truncate else blob


def write(name, blob):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    os.makedirs(os.path.join(OUT, "valid"))
    with open(os.path.join(OUT, "valid", "tiny.gguf"), "wb") as f:
        f.write(gguf())
    full = gguf()
    write("truncated_header.gguf", full[:200])
    write("truncated_data.gguf", full[: len(full) - 100])
    write("wrong_magic.gguf", gguf(magic=b"GGUX"))
    write("bad_version.gguf", gguf(version=7))
    write("data_past_eof.gguf", gguf(offset_shift=1 << 20))
    write("shape_mismatch.gguf", gguf(q_rows=HEADS * HEAD_DIM + 4))
    write("unknown_arch.gguf", gguf(arch="gpt-neox"))
    write("nan_weight.gguf", gguf(poison="blk.0.ffn_up.weight"))
    write("empty.gguf", b"")
    # Fuzzer finds (issue 18): counts and shapes whose products overflow or outgrow the file.
    write("huge_block_count.gguf", gguf(counts={"block_count": 0x7FFFFFFF}))
    write("block_count_past_tensors.gguf", gguf(counts={"block_count": 2}))
    write("huge_heads.gguf", gguf(counts={"attention.head_count": 65536, "attention.head_count_kv": 65536,
                                          "attention.key_length": 65536}))
    write("huge_tensor_dims.gguf", gguf(extra_tensor=("huge.weight", [1 << 40] * 4)))
    write("huge_tensor_bytes.gguf", gguf(extra_tensor=("huge.weight", [1 << 40, 1 << 22])))
    hf = os.path.join(OUT, "hf_bad_json")
    os.makedirs(hf)
    with open(os.path.join(hf, "config.json"), "w") as f:
        f.write('{"model_type": "llama", "hidden_size": 8,,}')
    hf = os.path.join(OUT, "hf_unknown_arch")
    os.makedirs(hf)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "hidden_size": 8}, f)
    hf = os.path.join(OUT, "hf_missing_weights")
    os.makedirs(hf)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": DIM,
                   "intermediate_size": FFN, "num_hidden_layers": 1, "num_attention_heads": HEADS,
                   "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "rms_norm_eps": 1e-5}, f)
    write("not_a_model.txt", b"hello\n")


if __name__ == "__main__":
    main()
