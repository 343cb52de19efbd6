"""lowbit: low-bit number formats, quantized LLM inference and quantization.

Thin Python bindings over the lowbit C++ library (the code the `lowbit` CLI
runs). docs/PYTHON.md describes the API.

Number formats::

    codes = lowbit.quantize(x, "fp8_e4m3")        # element format: uint8 codes, same shape
    y = lowbit.dequantize(codes, "fp8_e4m3")      # float32
    q = lowbit.quantize(w, "nvfp4")               # scaled format or GGUF type: a QuantizedTensor
    w_hat = lowbit.dequantize(q)                  # float32 in w's shape
    w_hat = lowbit.round_trip(w, "q4_K")          # quantize + dequantize

Models::

    m = lowbit.load_model("stories260K.gguf")
    logits = m.logits(m.tokenize("Once upon a time", bos=True))   # [n_tokens, vocab]
    lowbit.perplexity(m, text, ctx=128, chunks=4)["ppl"]

Library errors raise lowbit.LowbitError (a RuntimeError) with the library's
one-line message.
"""

from ._lowbit import (
    LowbitError,
    Model,
    QuantizedTensor,
    dequantize,
    export,
    format_info,
    formats,
    load_model,
    perplexity,
    quantize,
    quantize_model,
    recipes,
    round_trip,
)

__all__ = [
    "LowbitError",
    "Model",
    "QuantizedTensor",
    "dequantize",
    "export",
    "format_info",
    "formats",
    "load_model",
    "perplexity",
    "quantize",
    "quantize_model",
    "recipes",
    "round_trip",
]
