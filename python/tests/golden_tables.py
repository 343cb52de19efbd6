"""Readers of the golden material the C++ tests hold, so the Python suite checks
the same cases without a second copy:

  tests/test_element_golden.cpp   the named encode cases {"format", "case", x, code}
  tests/data/gguf_blocks/<type>   the bytes gguf_quantize writes for the fixture
                                  matrix of tests/test_gguf_blocks_fixtures.cpp
                                  (.bin) and their dequantization (.f32)
"""
import math
import re
from pathlib import Path

import numpy as np

_ROW = re.compile(r'\{"(\w+)",\s*"((?:[^"\\]|\\.)*)",\s*([^,]+),\s*(0x[0-9A-Fa-f]+)\}')


def c_float(literal: str) -> np.float32:
    """A C++ float literal of the golden table (hex, decimal, INFINITY, NAN, signs)."""
    s = literal.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "INFINITY":
        return np.float32(sign * math.inf)
    if s == "NAN":
        return np.float32(math.copysign(math.nan, sign))
    s = s.rstrip("fF")
    value = float.fromhex(s) if s.lower().startswith("0x") else float(s)
    return np.float32(sign * value)


def element_golden(repo: Path):
    """[(format, case, x float32, code)] from tests/test_element_golden.cpp."""
    text = (repo / "tests" / "test_element_golden.cpp").read_text()
    return [(f, case, c_float(x), int(code, 16)) for f, case, x, code in _ROW.findall(text)]


# tests/test_gguf_blocks_fixtures.cpp: kRows x kCols, made with integer
# arithmetic and float32 additions only, so it is the same everywhere.
FIXTURE_ROWS = 8
FIXTURE_COLS = 512
_M64 = (1 << 64) - 1


def _mix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _uniform(i: int) -> np.float32:
    return np.float32(_mix(i) >> 40) * np.float32(2.0**-24)


def _bell(i: int) -> np.float32:
    u = [_uniform(4 * i + k) for k in range(4)]
    return ((u[0] + u[1]) + u[2]) + u[3] - np.float32(2.0)


def gguf_fixture_matrix() -> np.ndarray:
    """[8, 512] float32: the C++ fixture_matrix()."""
    x = np.zeros((FIXTURE_ROWS, FIXTURE_COLS), np.float32)
    half = FIXTURE_COLS // 2
    for c in range(FIXTURE_COLS):
        x[1, c] = np.float32(0.75)
        x[2, c] = np.float32(c - half) / np.float32(128.0)
        x[3, c] = _bell(1000 + c)
        x[4, c] = _bell(2000 + c) * (np.float32(20.0) if _mix(3000 + c) % 23 == 0 else np.float32(1.0))
        x[5, c] = _bell(4000 + c) * np.float32(1e-6)
        x[6, c] = np.float32(300.0) if c == 77 else _bell(5000 + c) * np.float32(0.01)
        x[7, c] = _bell(6000 + c) * np.float32(1e4)
    return x


def gguf_fixture_importance() -> np.ndarray:
    """[512] float32: the C++ fixture_importance() (rows 4-7 are encoded with it)."""
    return np.array(
        [np.ldexp(np.float32(1.0) + _uniform(7000 + c), _mix(8000 + c) % 6) for c in range(FIXTURE_COLS)], np.float32
    )
