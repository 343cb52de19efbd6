#!/usr/bin/env python3
"""An independent reader of compressed-tensors checkpoints, for lowbit's tests.

Written from the format's description (the compressed-tensors package's
documentation and the layouts its compressors define), with numpy and plain
parsing of safetensors; it shares no code with lowbit. It decodes every
quantized Linear of a compressed-tensors folder and compares the weights, bit
for bit, with a reference folder of plain F32 (or F16/BF16) safetensors:

    ct_reader.py --ct EXPORTED_DIR --ref REFERENCE_DIR

The formats:
  pack-quantized   weight_packed int32 [rows, ceil(cols*b/32)]: per row a little-endian
                   bit stream of codes q + 2^(b-1); weight_scale [rows, cols/G] (group),
                   [rows, 1] (channel) or [1] (tensor); asymmetric: weight_zero_point int32
                   [ceil(rows*b/32), groups], zero points packed the same way down the
                   rows; W = (q - z) * s
  float-quantized  weight F8_E4M3 (OCP e4m3fn) and weight_scale (channel [rows, 1],
                   tensor [1], block [ceil(rows/bh), ceil(cols/bw)]); W = fp8 * s
  nvfp4-pack-quantized  weight_packed uint8 [rows, cols/2] (E2M1 codes, low nibble
                   first), weight_scale F8_E4M3 [rows, cols/16], weight_global_scale
                   F32 [1]; W = fp4 * (s / global)
Products are FP32, rounded to the scale's dtype when that is F16 or BF16.

Prints one line per failure and "N passed, M failed"; exits 1 on any failure.
"""

import argparse
import json
import os
import re
import struct
import sys

import numpy as np

DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2), "I32": (np.int32, 4),
          "I64": (np.int64, 8), "U8": (np.uint8, 1), "I8": (np.int8, 1), "F8_E4M3": (np.uint8, 1)}


def read_safetensors(path):
    """name -> (dtype name, shape, numpy array of the raw elements)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        np_type, size = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        count = int(np.prod(e["shape"], dtype=np.int64))
        assert end - begin == count * size, f"{path}: {name}: size mismatch"
        arr = np.frombuffer(data, dtype=np_type, count=count, offset=base + begin).reshape(e["shape"])
        out[name] = (e["dtype"], list(e["shape"]), arr)
    return out


def read_folder(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(os.path.join(folder, name)))
    return tensors


def e4m3fn(code):
    """Value of an OCP FP8 E4M3 ("fn") byte: bias 7, no infinities, S.1111.111 is NaN."""
    sign = -1.0 if code & 0x80 else 1.0
    e, m = (code >> 3) & 0xF, code & 0x7
    if e == 0xF and m == 0x7:
        return float("nan")
    if e == 0:
        return sign * m / 8.0 * 2.0 ** -6
    return sign * (1.0 + m / 8.0) * 2.0 ** (e - 7)


E4M3 = np.array([e4m3fn(c) for c in range(256)], dtype=np.float32)
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                dtype=np.float32)


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_rounded(x):
    """Round FP32 to BF16 (nearest, ties to even), returned as FP32."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def as_f32(dtype, arr):
    if dtype == "F32":
        return arr.astype(np.float32)
    if dtype == "F16":
        return arr.astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f32(arr)
    if dtype == "F8_E4M3":
        return E4M3[arr]
    raise ValueError(f"not a float dtype: {dtype}")


def round_to(dtype, x):
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return f32_to_bf16_rounded(x)
    return x


def unpack_bits(words, bits, n):
    """int32 words [rows, W] -> the first n b-bit codes of each row's bit stream."""
    rows = words.shape[0]
    raw = np.ascontiguousarray(words).view(np.uint8).reshape(rows, -1)
    stream = np.unpackbits(raw, axis=1, bitorder="little")[:, :n * bits].reshape(rows, n, bits)
    weights = (1 << np.arange(bits)).astype(np.int64)
    return (stream.astype(np.int64) * weights).sum(axis=2)


def matches(name, target):
    if target == "Linear":
        return True
    if target.startswith("re:"):
        return re.match(target[3:], name) is not None
    return target == name


def scheme_for(qc, module):
    for group in qc["config_groups"].values():
        if any(matches(module, t) for t in group["targets"]):
            if any(matches(module, t) for t in qc.get("ignore") or []):
                return None
            return group
    return None


def scale_index(w, rows, cols):
    """[rows, cols] index into the flattened scale grid."""
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    s = w["strategy"]
    if s == "tensor":
        return np.zeros((rows, cols), dtype=np.int64)
    if s == "channel":
        return np.broadcast_to(r, (rows, cols))
    if s in ("group", "tensor_group"):
        g = w["group_size"]
        assert cols % g == 0, "columns not a multiple of the group size"
        return r * (cols // g) + c // g
    if s == "block":
        bh, bw = w["block_structure"]
        return (r // bh) * -(-cols // bw) + c // bw
    raise ValueError(f"strategy {s}")


def decode(t, prefix, fmt, w, rows, cols):
    scale_dtype, _, scale_raw = t[prefix + ".weight_scale"]
    idx = scale_index(w, rows, cols)
    if fmt == "pack-quantized":
        b = w["num_bits"]
        dt, shape, packed = t[prefix + ".weight_packed"]
        assert dt == "I32" and shape == [rows, -(-cols * b // 32)], f"weight_packed {dt} {shape}"
        if prefix + ".weight_shape" in t:
            assert list(t[prefix + ".weight_shape"][2]) == [rows, cols], "weight_shape"
        q = unpack_bits(packed, b, cols) - (1 << (b - 1))
        s = as_f32(scale_dtype, scale_raw).reshape(-1)
        z = np.zeros(s.shape, dtype=np.int64)
        if not w["symmetric"]:
            _, zshape, zp = t[prefix + ".weight_zero_point"]
            zrows = scale_raw.shape[0]
            z = (unpack_bits(np.ascontiguousarray(zp.T), b, zrows).T - (1 << (b - 1))).reshape(-1)
        return round_to(scale_dtype, (q - z[idx]).astype(np.float32) * s[idx])
    if fmt == "float-quantized":
        dt, shape, codes = t[prefix + ".weight"]
        assert dt == "F8_E4M3" and shape == [rows, cols]
        s = as_f32(scale_dtype, scale_raw).reshape(-1)
        return round_to(scale_dtype, E4M3[codes] * s[idx])
    if fmt == "nvfp4-pack-quantized":
        dt, shape, packed = t[prefix + ".weight_packed"]
        assert dt == "U8" and shape == [rows, cols // 2]
        codes = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(rows, cols)
        g = as_f32(*t[prefix + ".weight_global_scale"][0::2]).reshape(-1)[0]
        s = (as_f32(scale_dtype, scale_raw).reshape(-1) / np.float32(g)).astype(np.float32)
        return E2M1[codes] * s[idx]
    raise ValueError(f"format {fmt}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ct", required=True, help="compressed-tensors folder")
    ap.add_argument("--ref", required=True, help="reference folder of plain safetensors")
    args = ap.parse_args()
    with open(os.path.join(args.ct, "config.json")) as f:
        config = json.load(f)
    qc = config["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["quantization_status"] == "compressed"
    ct = read_folder(args.ct)
    ref = read_folder(args.ref)
    passed = failed = quantized = 0
    seen = set()
    for name, (dtype, shape, arr) in sorted(ref.items()):
        prefix = name[:-len(".weight")] if name.endswith(".weight") else None
        group = scheme_for(qc, prefix) if prefix and prefix + ".weight_scale" in ct else None
        ref_values = as_f32(dtype, arr)
        if group is not None:
            fmt = group.get("format") or qc["format"]
            got = decode(ct, prefix, fmt, group["weights"], *shape)
            quantized += 1
            seen.update(k for k in ct if k.startswith(prefix + ".weight"))
        elif name in ct:
            got = as_f32(ct[name][0], ct[name][2])
            ref_values = round_to(ct[name][0], ref_values)  # the export's dense dtype
            seen.add(name)
        else:
            print(f"FAIL {name}: missing from {args.ct}")
            failed += 1
            continue
        diff = np.flatnonzero(got.reshape(-1).view(np.uint32) != ref_values.reshape(-1).view(np.uint32))
        if diff.size:
            i = diff[0]
            print(f"FAIL {name}: {diff.size} of {got.size} values differ; first at {np.unravel_index(i, got.shape)}: "
                  f"{got.reshape(-1)[i]!r} vs {ref_values.reshape(-1)[i]!r}")
            failed += 1
        else:
            passed += 1
    extra = sorted(set(ct) - seen)
    if extra:
        print(f"FAIL tensors of {args.ct} not accounted for: {extra[:5]}")
        failed += 1
    print(f"{quantized} quantized linears decoded")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or quantized == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
