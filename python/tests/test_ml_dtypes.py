"""lowbit's element formats against ml_dtypes (an independent implementation):
decode tables over every code, and encodes of every value, every tie and its
float32 neighbours, subnormal boundaries, overflow, +-inf, NaN, +-0 and random
arrays at several scales.

Where lowbit's documented policy differs (tests/test_element_oracle.cpp lists the
same cases) the test asserts lowbit's value and that the inputs exercised it:
  - overflow in "fn" formats (E4M3, E8M0), including +-inf: ml_dtypes gives NaN,
    lowbit saturates to +-max finite (OCP MX allows it; CUDA's __NV_SATFINITE does it);
  - NaN into FP6/FP4 (no NaN code): ml_dtypes gives -0 for +NaN and +0 for -NaN,
    lowbit +0;
  - NaN elsewhere: any NaN from ml_dtypes, lowbit's canonical NaN code;
  - E8M0 of 0 or a negative number: ml_dtypes NaN, lowbit 2^-127 (its smallest code);
  - E8M0 ties 1.5 * 2^k: ml_dtypes rounds up, lowbit to the even code;
  - E8M0 of float32 subnormals in (2^-127, 2^-126): ml_dtypes rounds up to 2^-126,
    lowbit to the nearest.
ml_dtypes' integer types (int4, int2, ...) convert floats by truncation, not
rounding, so only their decode tables are compared.
"""
import numpy as np
import pytest

import lowbit

ml_dtypes = pytest.importorskip("ml_dtypes")

FLOATS = {  # lowbit element format -> ml_dtypes type
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "fp6_e2m3": "float6_e2m3fn",
    "fp6_e3m2": "float6_e3m2fn",
    "fp4_e2m1": "float4_e2m1fn",
    "e8m0": "float8_e8m0fnu",
    "bf16": "bfloat16",
    "fp16": "float16",
}
INTS = {"int4_full": "int4", "uint4": "uint4", "int2_full": "int2", "uint2": "uint2"}


def ml_type(name):
    return np.float16 if name == "float16" else getattr(ml_dtypes, name)


def bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def same(a, b):
    """Equal float32 values, -0 and +0 distinguished, any NaN equal to any NaN."""
    return (bits(a) == bits(b)) | (np.isnan(a) & np.isnan(b))


def code_view(y):
    return y.view(np.uint8) if y.dtype.itemsize == 1 else y.view(np.uint16)


def all_codes(fmt):
    n = 1 << lowbit.format_info(fmt, kind="element")["bits"]
    return np.arange(n, dtype=np.uint8 if n <= 256 else np.uint16)


@pytest.mark.parametrize("fmt", list(FLOATS) + list(INTS))
def test_decode_tables_match(fmt):
    codes = all_codes(fmt)
    ours = lowbit.dequantize(codes, fmt, kind="element")
    theirs = codes.view(ml_type({**FLOATS, **INTS}[fmt])).astype(np.float32)
    assert np.all(same(ours, theirs)), f"{fmt}: codes {codes[~same(ours, theirs)]}"


def probe_inputs(fmt, seed=0):
    """float32 inputs: every value, midpoints (ties) and their neighbours, specials, random."""
    table = lowbit.dequantize(all_codes(fmt), fmt, kind="element")
    v = np.unique(table[np.isfinite(table)].astype(np.float64))
    mids = ((v[1:] + v[:-1]) / 2).astype(np.float32)
    assert np.all(mids.astype(np.float64) == (v[1:] + v[:-1]) / 2), "midpoints are float32 numbers"
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(-np.inf))
    vmax = np.float32(np.max(v))
    with np.errstate(over="ignore"):  # bf16's 2 * max is inf, which is wanted
        big = [vmax * np.float32(1.01), vmax * np.float32(2), np.float32(1e30), np.finfo(np.float32).max]
    rng = np.random.default_rng(seed)
    rand = [rng.normal(size=2000).astype(np.float32) * np.float32(10.0**k) for k in range(-12, 12, 3)]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -1e-40, 1e-45, -1e-45, 2.0**-127, 1.4 * 2.0**-127]
    x = np.concatenate([v.astype(np.float32), mids, up, down, np.array(big, np.float32)] + rand
                       + [np.array(special, np.float32)])
    return np.concatenate([x, -x]).astype(np.float32)


@pytest.mark.parametrize("fmt", list(FLOATS))
def test_encode_matches_except_the_documented_policies(fmt):
    x = probe_inputs(fmt)
    T = ml_type(FLOATS[fmt])
    with np.errstate(over="ignore", invalid="ignore"):
        ml = x.astype(T)
    theirs = ml.astype(np.float32)
    ours = lowbit.round_trip(x, fmt, kind="element")
    codes = lowbit.quantize(x, fmt, kind="element")
    info = lowbit.format_info(fmt, kind="element")
    vmax = np.float32(info["max"])
    nan_in = np.isnan(x)
    allowed = np.zeros(x.shape, bool)
    counts = {}

    def allow(name, mask, expected):
        counts[name] = int(mask.sum())
        assert np.all(same(ours[mask], np.asarray(expected, np.float32)[mask] if np.ndim(expected) else
                           np.full(mask.sum(), expected, np.float32))), f"{fmt}: {name}"
        allowed[mask] = True

    if fmt in ("fp8_e4m3", "e8m0"):
        overflow = np.isnan(theirs) & ~nan_in & (x > 0 if fmt == "e8m0" else True)
        allow("overflow saturates", overflow, np.copysign(vmax, x))
    if fmt in ("fp6_e2m3", "fp6_e3m2", "fp4_e2m1"):
        allow("NaN to +0", nan_in, np.float32(0.0))
    else:
        nan_out = nan_in & np.isnan(ours) & np.isnan(theirs)
        counts["NaN"] = int(nan_out.sum())
        allowed[nan_out] = True
        assert np.all(np.isnan(ours[nan_in])), f"{fmt}: NaN input gives NaN"
        # lowbit's NaN code is canonical: one code for every NaN input.
        assert len(np.unique(codes[nan_in])) == 1
    if fmt == "e8m0":
        allow("zero or negative to 2^-127", (x <= 0) & ~nan_in, np.float32(2.0**-127))
        m = x.view(np.uint32) & 0x7FFFFF
        tie = (x > 0) & np.isfinite(x) & (m == 0x400000) & (x >= np.float32(2.0**-126))
        lo = np.exp2(np.floor(np.log2(x[tie].astype(np.float64)))).astype(np.float32)
        # lo = 2^k has code k + 127: an even k means an odd code, so the tie goes up.
        even_code = np.where(np.log2(lo.astype(np.float64)).astype(np.int64) % 2 == 0, lo * 2, lo)
        tie_mask = np.zeros(x.shape, bool)
        tie_mask[tie] = True
        expected = np.zeros(x.shape, np.float32)
        expected[tie] = even_code
        allow("ties to the even code", tie_mask & (theirs != ours), expected)
        sub = (x > np.float32(2.0**-127)) & (x < np.float32(2.0**-126))
        nearest = np.where(x <= np.float32(1.5 * 2.0**-127), np.float32(2.0**-127), np.float32(2.0**-126))
        allow("float32 subnormals to the nearest", sub & ~same(ours, theirs), nearest)
    mismatch = ~same(ours, theirs) & ~allowed
    assert not np.any(mismatch), (
        f"{fmt}: {mismatch.sum()} inputs differ, first x = {x[mismatch][:5]}, lowbit {ours[mismatch][:5]}, "
        f"ml_dtypes {theirs[mismatch][:5]}")
    # Codes too, where both produce a value (NaN codes are lowbit's canonical one).
    both = ~allowed
    np.testing.assert_array_equal(codes[both], code_view(ml)[both])
    # Every documented difference was exercised by the inputs.
    for name, n in counts.items():
        assert n > 0, f"{fmt}: no input exercised '{name}'"


def test_the_documented_differences_in_one_line_each():
    """The policies the module docstring lists, on single values."""
    q = lambda x, f: float(lowbit.round_trip(np.array([x], np.float32), f, kind="element")[0])
    assert q(1000.0, "fp8_e4m3") == 448.0 and np.isnan(np.float32(1000.0).astype(ml_dtypes.float8_e4m3fn).astype(np.float32))
    assert q(np.inf, "fp8_e4m3") == 448.0
    assert q(np.inf, "fp8_e5m2") == np.inf
    assert q(np.nan, "fp4_e2m1") == 0.0 and not np.signbit(q(np.nan, "fp4_e2m1"))
    assert q(0.0, "e8m0") == 2.0**-127
    assert q(1.5, "e8m0") == 2.0 and q(3.0, "e8m0") == 2.0
    assert float(np.float32(3.0).astype(ml_dtypes.float8_e8m0fnu).astype(np.float32)) == 4.0
