#!/usr/bin/env python3
"""gguf-py decodes the bytes lowbit's GGUF block encoders write, bit for bit.

tests/data/gguf_blocks/<type>.bin holds what lowbit's gguf_quantize wrote for a
fixed matrix, <type>.f32 lowbit's own dequantization of those bytes
(tests/test_gguf_blocks_fixtures.cpp writes both and checks the encoder still
produces them). Here gguf.quants.dequantize, llama.cpp's numpy reference, must
give exactly the .f32 values for every type.

    pip install gguf numpy && python3 tests/python/test_gguf_blocks_py.py
Also runs under pytest, and from the C++ suite (GgufBlockFixtures.GgufPyDecodesLowbitBytes).
"""

import sys
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, dequantize

DATA = Path(__file__).resolve().parent.parent / "data" / "gguf_blocks"
TYPES = ["q8_0", "q6_K", "q5_K", "q4_K", "q5_0", "q5_1", "q4_0", "q4_1", "q3_K", "q2_K", "iq4_nl"]


def check(name):
    """Returns None when gguf-py agrees, else a one-line description of the first mismatch."""
    qtype = GGMLQuantizationType[name.upper()]
    raw = np.fromfile(DATA / f"{name}.bin", dtype=np.uint8)
    expected = np.fromfile(DATA / f"{name}.f32", dtype="<f4")
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if raw.size % type_size or raw.size // type_size * block_size != expected.size:
        return f"{name}: {raw.size} bytes do not hold {expected.size} values"
    got = dequantize(raw, qtype).reshape(-1).astype("<f4")
    bad = np.flatnonzero(got.view(np.uint32) != expected.view(np.uint32))
    if bad.size:
        i = int(bad[0])
        return (f"{name}: {bad.size} values differ, first at element {i} (block {i // block_size}): "
                f"gguf-py {got[i]!r}, lowbit {expected[i]!r}")
    return None


def test_gguf_py_matches_lowbit():
    failures = [m for m in map(check, TYPES) if m]
    assert not failures, "\n".join(failures)


def main():
    failures = []
    for name in TYPES:
        message = check(name)
        print(message or f"{name}: gguf-py == lowbit, bit for bit")
        if message:
            failures.append(message)
    print(f"{len(TYPES) - len(failures)} of {len(TYPES)} types agree" if failures else f"all {len(TYPES)} types agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
