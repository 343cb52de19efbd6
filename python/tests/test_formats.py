"""lowbit.formats / quantize / dequantize / round_trip against the C++ library's
golden material: the named encode cases of tests/test_element_golden.cpp, the
asymmetric-integer golden codes of tests/test_block_formats.cpp, the GGUF block
fixtures of tests/test_gguf_blocks_fixtures.cpp (and gguf-py's decoder where
installed), and the names `lowbit formats` prints."""
import re
import subprocess

import numpy as np
import pytest

import lowbit
from conftest import REPO
from golden_tables import (
    FIXTURE_COLS,
    FIXTURE_ROWS,
    element_golden,
    gguf_fixture_importance,
    gguf_fixture_matrix,
)

ELEMENT = lowbit.formats("element")
SCALED = lowbit.formats("scaled")
GGUF = lowbit.formats("gguf")


def bits(a: np.ndarray) -> np.ndarray:
    """float32 bit patterns, so -0 != +0 and NaNs compare by payload."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def test_names_are_the_ones_the_cli_prints(lowbit_cli):
    out = subprocess.run([str(lowbit_cli), "formats"], capture_output=True, text=True, check=True).stdout
    scaled_part, element_part = out.split("Element formats")
    row = re.compile(r"^  (\S+)\s+\d", re.M)
    assert row.findall(scaled_part) == SCALED
    assert row.findall(element_part) == ELEMENT


def test_format_lists_and_shared_names():
    assert {"nvfp4", "mxfp4", "int4_g128", "mxfp8_e4m3", "nf4_g64"} <= set(SCALED)
    assert {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl"} == set(GGUF)
    everything = lowbit.formats()
    assert len(everything) == len(set(everything))
    assert set(everything) == set(ELEMENT) | set(SCALED) | set(GGUF)
    # fp8_e4m3 names an element format and a scaled one; without kind the element format is meant.
    assert lowbit.format_info("fp8_e4m3")["kind"] == "element"
    assert lowbit.format_info("fp8_e4m3", kind="scaled")["kind"] == "scaled"
    info = lowbit.format_info("nvfp4")
    assert info["bits"] == 4 and info["block_size"] == 16
    assert info["bits_per_element"] == pytest.approx(4.5, abs=1e-3)
    assert lowbit.format_info("q4_0")["bits_per_element"] == 4.5


# ---- element formats ----

GOLDEN = element_golden(REPO)


def test_golden_table_was_read():
    assert len(GOLDEN) > 150
    assert {g[0] for g in GOLDEN} >= {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0", "bf16", "fp16"}


@pytest.mark.parametrize("fmt,case,x,code", GOLDEN, ids=[f"{g[0]}:{g[1]}" for g in GOLDEN])
def test_named_golden_cases(fmt, case, x, code):
    got = lowbit.quantize(np.array([x], np.float32), fmt, kind="element")
    assert int(got[0]) == code, f"{fmt} / {case}: x = {x!r}"


@pytest.mark.parametrize("fmt", ELEMENT)
def test_every_code_decodes_and_reencodes(fmt):
    info = lowbit.format_info(fmt, kind="element")
    n = 1 << info["bits"]
    codes = np.arange(n, dtype=np.uint8 if info["bits"] <= 8 else np.uint16)
    values = lowbit.dequantize(codes, fmt)
    assert values.dtype == np.float32 and values.shape == (n,)
    again = lowbit.quantize(values, fmt)
    assert again.dtype == codes.dtype
    reserved = set(info["reserved_codes"])
    keep = np.array([c not in reserved for c in range(n)])
    np.testing.assert_array_equal(again[keep], codes[keep])
    finite = values[keep & ~np.isnan(values)]
    assert len(np.unique(bits(finite))) == len(finite), "two codes decode to one value"
    finite_max = np.max(np.abs(values[keep & np.isfinite(values)]))
    assert finite_max == pytest.approx(info["max"], rel=1e-6)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "int4", "nf4", "bf16", "posit16_1"])
def test_element_arrays_keep_their_shape(fmt):
    x = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    codes = lowbit.quantize(x, fmt)
    assert codes.shape == x.shape
    y = lowbit.dequantize(codes, fmt)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(bits(lowbit.round_trip(x, fmt)), bits(y))
    # float64 and Python lists are converted to float32 first.
    np.testing.assert_array_equal(lowbit.quantize(x.astype(np.float64), fmt), codes)
    assert list(lowbit.quantize([1.0, -2.0], "int4")) == [1, 0xE]


# ---- scaled formats ----

@pytest.mark.parametrize("fmt", SCALED)
def test_scaled_formats_round_trip_and_requantize(fmt):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 200)).astype(np.float32)  # 200: a partial last group for most formats
    q = lowbit.quantize(x, fmt, kind="scaled")
    assert isinstance(q, lowbit.QuantizedTensor)
    assert (q.format, q.kind, q.shape, q.rows, q.cols) == (fmt, "scaled", (6, 200), 6, 200)
    info = lowbit.format_info(fmt, kind="scaled")
    assert q.codes.shape == (6, (200 * info["bits"] + 7) // 8)
    assert q.nbytes == q.codes.size + q.scales.size + q.mins.size + (4 if fmt == "nvfp4" else 0)
    y = lowbit.dequantize(q)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(bits(lowbit.round_trip(x, fmt, kind="scaled")), bits(y))
    # Dequantize -> quantize returns the same codes (every named format is requantize-stable).
    q2 = lowbit.quantize(y, fmt, kind="scaled")
    np.testing.assert_array_equal(q2.codes, q.codes)
    np.testing.assert_array_equal(q2.scales, q.scales)
    np.testing.assert_array_equal(q2.mins, q.mins)
    codes = q.element_codes()
    assert codes.shape == (6, 200) and codes.max() < (1 << info["bits"])
    rel = np.sqrt(np.mean((y - x) ** 2) / np.mean(x**2))
    assert rel < 0.6, f"{fmt}: relative RMS error {rel}"  # 2-bit per-row is the worst, 0.56


def test_int5_g32_asym_golden_codes():
    """tests/test_block_formats.cpp AsymmetricIntGoldenCodes, the int5_g32_asym row."""
    special = [-1.0, 0.0, 0.3, 0.125, 0.375, -0.875, -0.8125, 6.7]
    special_codes = [0, 4, 5, 4, 6, 0, 1, 31]
    x = [special[i] if i < 8 else 0.25 * i - 1.0 for i in range(32)] + [0.0] * 32 + [-0.5] * 32 + [0.7] * 32
    want = [special_codes[i] if i < 8 else i for i in range(32)] + [0] * 32 + [0] * 32 + [31] * 32
    q = lowbit.quantize(np.array([x], np.float32), "int5_g32_asym")
    np.testing.assert_array_equal(q.element_codes()[0], want)
    np.testing.assert_array_equal(q.scale_codes()[0], [0x3400, 0x0000, 0x2421, 0x25C8])
    np.testing.assert_array_equal(q.min_codes()[0], [0xBC00, 0x0000, 0xB800, 0x0000])
    y = lowbit.dequantize(q)[0]
    assert y[64] == -0.5 and y[96] == np.float32(45880.0 / 65536.0)


FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def test_mxfp4_block_of_the_fp4_grid():
    # 32 values: the FP4 grid and its negatives, twice, times 4: amax 24 -> scale 2^(4 - 2) = 4, E8M0 code 129.
    grid = np.array(FP4_VALUES + [-v for v in FP4_VALUES], np.float32)
    x = np.tile(grid, 2)[None, :] * 4
    q = lowbit.quantize(x, "mxfp4")
    np.testing.assert_array_equal(q.scale_codes(), [[129]])
    np.testing.assert_array_equal(q.element_codes()[0], np.tile(np.arange(16), 2))
    np.testing.assert_array_equal(lowbit.dequantize(q), x)
    # Two codes a byte, low nibble first.
    assert q.codes[0, 0] == 0x10 and q.codes[0, 1] == 0x32


def test_nvfp4_block_scale_and_tensor_scale():
    grid = np.array(FP4_VALUES + [-v for v in FP4_VALUES], np.float32)[None, :]  # one block of 16, amax 6
    q = lowbit.quantize(grid, "nvfp4")
    # s_tensor = amax / (6 * 448); the block scale amax / 6 / s_tensor = 448 = UE4M3 code 0x7E.
    assert q.tensor_scale == pytest.approx(6.0 / (6 * 448), rel=1e-7)
    np.testing.assert_array_equal(q.scale_codes(), [[0x7E]])
    np.testing.assert_array_equal(q.element_codes()[0], np.arange(16))


# ---- GGUF block types ----

@pytest.mark.parametrize("fmt", GGUF)
def test_gguf_types_reproduce_the_committed_fixtures(fmt, repo):
    base = repo / "tests" / "data" / "gguf_blocks" / fmt
    if not base.with_suffix(".bin").exists():
        pytest.skip(f"no fixture {base}.bin")
    x = gguf_fixture_matrix()
    half = FIXTURE_ROWS // 2
    plain = lowbit.quantize(x[:half], fmt)
    weighted = lowbit.quantize(x[half:], fmt, importance=gguf_fixture_importance())
    assert plain.kind == "gguf" and plain.scales.size == 0 and plain.tensor_scale == 1.0
    got = np.concatenate([plain.codes, weighted.codes]).tobytes()
    assert got == base.with_suffix(".bin").read_bytes(), f"{fmt}: bytes differ from the C++ encoder's fixture"
    y = np.concatenate([lowbit.dequantize(plain), lowbit.dequantize(weighted)])
    want = np.fromfile(base.with_suffix(".f32"), dtype="<f4").reshape(FIXTURE_ROWS, FIXTURE_COLS)
    np.testing.assert_array_equal(bits(y), bits(want))


@pytest.mark.parametrize("fmt", GGUF)
def test_gguf_py_decodes_the_bytes_identically(fmt):
    gguf = pytest.importorskip("gguf", reason="gguf-py not installed")
    x = np.random.default_rng(2).standard_t(df=4, size=(4, 512)).astype(np.float32)
    q = lowbit.quantize(x, fmt)
    qtype = gguf.GGMLQuantizationType[fmt.upper()]
    theirs = gguf.quants.dequantize(q.codes, qtype).astype(np.float32)
    np.testing.assert_array_equal(bits(theirs.reshape(x.shape)), bits(lowbit.dequantize(q)))


# ---- errors ----

def test_errors_raise_with_the_library_message():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(lowbit.LowbitError, match="unknown format 'fp3'"):
        lowbit.quantize(x, "fp3")
    with pytest.raises(lowbit.LowbitError, match="unknown element format 'nvfp4'"):
        lowbit.quantize(x, "nvfp4", kind="element")
    with pytest.raises(ValueError, match="kind='matrix'"):
        lowbit.quantize(x, "nvfp4", kind="matrix")
    with pytest.raises(lowbit.LowbitError, match="q4_K.*256"):
        lowbit.quantize(np.ones((2, 100), np.float32), "q4_K")
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(lowbit.LowbitError):
        lowbit.quantize(bad, "nvfp4")
    with pytest.raises(ValueError, match="scalar"):
        lowbit.quantize(np.float32(1.0), "mxfp4")
    with pytest.raises(lowbit.LowbitError, match="cannot store a \\[0, 32\\] matrix"):
        lowbit.quantize(np.ones((0, 32), np.float32), "mxfp4")
    with pytest.raises(ValueError, match="outside \\[0, 16\\)"):
        lowbit.dequantize(np.array([3, 16]), "fp4_e2m1")
    with pytest.raises(ValueError, match="outside"):
        lowbit.dequantize(np.array([-1]), "int8")
    with pytest.raises(TypeError, match="integer array"):
        lowbit.dequantize(np.array([1.0]), "int8")
    with pytest.raises(ValueError, match="QuantizedTensor"):
        lowbit.dequantize(np.array([1]), "nvfp4")
    with pytest.raises(ValueError, match="importance"):
        lowbit.quantize(x, "q4_0", importance=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="element_codes"):
        lowbit.quantize(np.ones((1, 32), np.float32), "q8_0").element_codes()
    with pytest.raises(ValueError, match="symmetric"):
        lowbit.quantize(x, "mxfp4").min_codes()
    assert issubclass(lowbit.LowbitError, RuntimeError)
