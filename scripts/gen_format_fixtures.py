#!/usr/bin/env python3
"""Writes tests/data/formats/: the ml_dtypes oracle for lowbit's element formats.

For every format the oracle covers (ml_dtypes float8_e4m3fn, float8_e5m2,
float6_e2m3fn, float6_e3m2fn, float4_e2m1fn, float8_e8m0fnu, bfloat16 and numpy's
float16) it writes

  <name>.decode   one line per code: "code float32_bits" (hex), ≤ 8-bit formats only
  <name>.encode   one line per input: "float32_bits code" (hex): the code ml_dtypes
                  gives when casting the float32 to the format

The encode inputs are stratified: every representable value, every midpoint
between neighbours (the ties) and the float32 values one ulp either side of
those, the subnormal/normal boundary, max finite and the values around the
overflow threshold, huge values, ±inf, NaN, ±0, float32 subnormals, and seeded
random values (log-uniform over the format's range and uniform bit patterns), all
with both signs. C++ tests (tests/test_element_oracle.cpp) read these files, so CI
needs neither Python nor ml_dtypes.

Usage: pip install ml_dtypes numpy; python3 scripts/gen_format_fixtures.py
"""

import os
import sys

import ml_dtypes
import numpy as np

FORMATS = {
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
    "e8m0": ml_dtypes.float8_e8m0fnu,
    "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
}
BITS = {"fp8_e4m3": 8, "fp8_e5m2": 8, "fp6_e2m3": 6, "fp6_e3m2": 6, "fp4_e2m1": 4, "e8m0": 8,
        "bf16": 16, "fp16": 16}
RANDOM_PER_FORMAT = 4000


def code_dtype(bits):
    return np.uint8 if bits <= 8 else np.uint16


def decode_all(dtype, bits):
    codes = np.arange(1 << bits, dtype=code_dtype(bits))
    # Sub-byte ml_dtypes types take their code in the low bits of a byte.
    return codes, codes.view(dtype).astype(np.float32)


def encode(dtype, bits, xs):
    return xs.astype(dtype).view(code_dtype(bits))


def f32_neighbours(v):
    v = np.float32(v)
    return [np.nextafter(v, np.float32(-np.inf)), v, np.nextafter(v, np.float32(np.inf))]


def stratified_inputs(name, dtype, bits, rng):
    if bits <= 8:
        _, values = decode_all(dtype, bits)
    else:
        # 16-bit formats: a sample of codes stands in for the full table.
        codes = np.unique(np.concatenate([np.arange(0, 1 << bits, 331), np.arange(0, 64),
                                          np.arange((1 << (bits - 1)) - 300, 1 << (bits - 1))]))
        values = codes.astype(code_dtype(bits)).view(dtype).astype(np.float32)
    finite = np.unique(np.abs(values[np.isfinite(values)]).astype(np.float64))
    xs = []
    for v in finite:
        xs += f32_neighbours(v)
    for lo, hi in zip(finite[:-1], finite[1:]):
        xs += f32_neighbours((lo + hi) / 2)  # exact in float32 for these formats
    top = finite[-1]
    # Overflow threshold region: the next binade's spacing beyond max finite.
    step = top - finite[-2]
    for mult in [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 1e3]:
        xs += f32_neighbours(top + step * mult)
    xs += [np.float32(3.0e38), np.float32(np.finfo(np.float32).max), np.float32(np.inf),
           np.float32(np.nan), np.float32(0.0), np.float32(1e-45), np.float32(1.17549435e-38),
           np.float32(2.0 ** -127), np.float32(2.0 ** -128)]
    # Below the smallest positive value: half of it and its neighbours (ties to zero).
    small = finite[finite > 0][0]
    xs += f32_neighbours(small / 2) + f32_neighbours(small / 4) + f32_neighbours(small * 0.75)
    # Random: log-uniform over the range, plus raw bit patterns.
    lo_exp = np.log2(small) - 3
    hi_exp = np.log2(top) + 3
    xs += list((2.0 ** rng.uniform(lo_exp, hi_exp, RANDOM_PER_FORMAT // 2)).astype(np.float32))
    xs += list(rng.integers(0, 2 ** 31, RANDOM_PER_FORMAT // 2, dtype=np.uint32).view(np.float32))
    xs = np.array(xs, dtype=np.float32)
    xs = np.concatenate([xs, -xs])
    bits_u32 = np.unique(xs.view(np.uint32))
    return bits_u32.view(np.float32)


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "formats")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240503)
    for name, dtype in FORMATS.items():
        bits = BITS[name]
        digits = 2 if bits <= 8 else 4
        if bits <= 8:
            codes, values = decode_all(dtype, bits)
            with open(os.path.join(out_dir, name + ".decode"), "w") as f:
                f.write(f"# {name}: code float32_bits, from ml_dtypes {ml_dtypes.__version__} ({dtype.__name__})\n")
                for c, v in zip(codes, values.view(np.uint32)):
                    f.write(f"{int(c):0{digits}x} {int(v):08x}\n")
        with np.errstate(all="ignore"):  # overflowing casts are part of the cases
            xs = stratified_inputs(name, dtype, bits, rng)
            codes = encode(dtype, bits, xs)
        with open(os.path.join(out_dir, name + ".encode"), "w") as f:
            f.write(f"# {name}: float32_bits code, from ml_dtypes {ml_dtypes.__version__} ({dtype.__name__})\n")
            for x, c in zip(xs.view(np.uint32), codes):
                f.write(f"{int(x):08x} {int(c):0{digits}x}\n")
        print(f"{name}: {len(xs)} encode cases", file=sys.stderr)


if __name__ == "__main__":
    main()
