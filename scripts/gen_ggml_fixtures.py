#!/usr/bin/env python3
"""Generates the GGUF block fixtures that tests/test_ggml_types.cpp reads.

The oracle is gguf-py (the `gguf` PyPI package from llama.cpp): its numpy
`gguf.quants` code quantizes and dequantizes independently of lowbit's C++.
For every type this writes into tests/data/ggml_blocks/:

  <name>.bin  raw block bytes, [n_blocks * bytes_per_block]
  <name>.f32  gguf-py's dequantized values, little-endian float32,
              [n_blocks * block_size]

Blocks come from two sources, so that both realistic and arbitrary codes are
covered:
  * gguf-py's own quantizer run on structured rows (all zero, constant, ramp,
    Gaussian, one huge outlier, tiny values), where gguf-py has a quantizer;
  * seeded random bytes with the fp16 scale fields overwritten by finite values
    (random codes hit every nibble/bit pattern; the K-quants and IQ4_NL have
    only a dequantizer in gguf-py, so they use this source alone).

Only needed when the fixtures change; CI reads the committed files.
    pip install gguf numpy && python3 scripts/gen_ggml_fixtures.py
"""

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES, dequantize, quantize

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "ggml_blocks"
SEED = 20240611

# Byte offsets of the fp16 scale fields inside one block, per type (ggml layout).
HALF_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],     # scales[16], qs[64], d, dmin
    T.Q3_K: [108],        # hmask[32], qs[64], scales[12], d
    T.Q4_K: [0, 2],       # d, dmin, scales[12], qs[128]
    T.Q5_K: [0, 2],       # d, dmin, scales[12], qh[32], qs[128]
    T.Q6_K: [208],        # ql[128], qh[64], scales[16], d
    T.IQ4_NL: [0],        # d, qs[16]
}

QUANTIZABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
DEQUANT_ONLY = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL]


def structured_rows(rng, block_size):
    """Rows with known shapes: [n_rows, block_size] float32."""
    ramp = np.linspace(-1.0, 1.0, block_size, dtype=np.float32)
    outlier = rng.standard_normal(block_size).astype(np.float32) * 0.01
    outlier[block_size // 3] = 300.0
    rows = [
        np.zeros(block_size, np.float32),                            # all zero: d = 0
        np.full(block_size, 0.75, np.float32),                       # constant
        ramp,                                                        # ramp
        -ramp * 7.0,                                                 # negative-max ramp
        rng.standard_normal(block_size).astype(np.float32),          # Gaussian
        outlier,                                                     # one huge outlier
        rng.standard_normal(block_size).astype(np.float32) * 1e-6,   # tiny: subnormal fp16 d
    ]
    return np.stack(rows)


def random_blocks(rng, qtype, n_blocks):
    """Random codes with finite fp16 scales: [n_blocks, bytes_per_block] uint8."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    scales = [0.5, -0.03125, 1.7e-3, 3.0e-6, -11.25, 65504.0, 0.0, 2.0e-7]  # 2e-7: subnormal
    for b in range(n_blocks):
        for k, off in enumerate(HALF_FIELDS[qtype]):
            value = scales[(b + 3 * k) % len(scales)] * (1.0 if k == 0 else 0.37)
            blocks[b, off:off + 2] = np.frombuffer(np.float16(value).tobytes(), np.uint8)
    return blocks


def write(name, raw, expected):
    (OUT / f"{name}.bin").write_bytes(np.ascontiguousarray(raw, np.uint8).tobytes())
    (OUT / f"{name}.f32").write_bytes(np.ascontiguousarray(expected).astype("<f4").tobytes())
    print(f"{name}: {raw.size} bytes -> {expected.size} floats")


def special_half_codes():
    """Zeros, smallest/largest subnormal, smallest normal, max, inf, NaNs: both signs."""
    base = [0x0000, 0x0001, 0x0002, 0x03FF, 0x0400, 0x3C00, 0x3BFF, 0x3C01, 0x7BFF,
            0x7C00, 0x7C01, 0x7E00, 0x7FFF, 0x4000, 0x3555]
    return np.array(base + [c | 0x8000 for c in base], dtype=np.uint16)


def main():
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)

    # F32: random bit patterns (NaN payloads, subnormals, infinities included).
    f32_bits = rng.integers(0, 2**32, size=128, dtype=np.uint64).astype(np.uint32)
    f32_bits[:4] = [0x7FC00001, 0xFF800000, 0x00000001, 0x80000000]
    write("f32", f32_bits.view(np.uint8), dequantize(f32_bits.view(np.uint8), T.F32))

    # F16 and BF16: special codes followed by random codes.
    for name, qtype in (("f16", T.F16), ("bf16", T.BF16)):
        codes = np.concatenate([special_half_codes(),
                                rng.integers(0, 2**16, size=226, dtype=np.uint32).astype(np.uint16)])
        if qtype == T.BF16:
            codes[:4] = [0x7FC1, 0xFF81, 0x0001, 0x807F]  # NaN payloads, bf16 subnormals
        raw = codes.astype("<u2").view(np.uint8)
        write(name, raw, dequantize(raw, qtype))

    for qtype in QUANTIZABLE:
        block_size, _ = GGML_QUANT_SIZES[qtype]
        quantized = quantize(structured_rows(rng, block_size), qtype)
        raw = np.concatenate([quantized, random_blocks(rng, qtype, 5)])
        write(qtype.name.lower(), raw, dequantize(raw, qtype).reshape(-1))

    for qtype in DEQUANT_ONLY:
        raw = random_blocks(rng, qtype, 4)
        name = qtype.name.lower().replace("_k", "_K")
        write(name, raw, dequantize(raw, qtype).reshape(-1))


if __name__ == "__main__":
    main()
