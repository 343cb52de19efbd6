"""Models through lowbit.load_model / perplexity / quantize_model / export on
stories260K (LOWBIT_SHARED_DIR/models/stories260K; skips without it): logits
against the float64 reference in golden_reference.json with the tolerance of
tests/test_model_golden.cpp, and every number against what the `lowbit` CLI
prints for the same arguments."""
import json
import subprocess

import numpy as np
import pytest

import lowbit

LOGIT_TOL = 1e-4  # tests/test_model_golden.cpp: max |logit - golden|
CTX, CHUNKS = 128, 4


@pytest.fixture(scope="session")
def golden(stories_dir):
    path = stories_dir / "golden_reference.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def stories(stories_gguf):
    return lowbit.load_model(str(stories_gguf))


@pytest.fixture(scope="session")
def text(tinystories_text):
    return tinystories_text.read_bytes().decode("utf-8")  # the bytes the CLI reads, newlines untranslated


def cli_json(cli, tmp_path, *args):
    report = tmp_path / "report.json"
    subprocess.run([str(cli), *map(str, args), "--json", str(report)], check=True, capture_output=True, text=True)
    return json.loads(report.read_text())


def test_config_and_tokenizer(stories, golden):
    c = stories.config
    assert (c["n_layers"], c["dim"], c["n_heads"], c["n_kv_heads"], c["vocab_size"]) == (5, 64, 8, 4, 512)
    assert stories.vocab_size == 512 and stories.bos_id == 1 and stories.add_bos
    for s, ids in golden["encode_no_bos"].items():
        assert stories.tokenize(s) == ids, s
    assert stories.tokenize("Once upon a time", bos=True) == [1] + golden["encode_no_bos"]["Once upon a time"]
    assert stories.detokenize(stories.tokenize("Hello world!")).strip() == "Hello world!"


def test_logits_match_the_golden_reference(stories, golden):
    prompt = golden["prompt_tokens"]
    logits = stories.logits(prompt)
    assert logits.shape == (len(prompt), 512) and logits.dtype == np.float32
    for row, key in ((0, "logits_after_bos"), (-1, "logits_last_prompt_token")):
        want = np.array(golden[key])
        worst = np.argmax(np.abs(logits[row] - want))
        assert abs(logits[row][worst] - want[worst]) <= LOGIT_TOL, f"{key}: logit {worst}"


def test_perplexity_equals_the_cli(stories, stories_gguf, tinystories_text, text, lowbit_cli, tmp_path):
    r = lowbit.perplexity(stories, text, ctx=CTX, chunks=CHUNKS)
    cli = cli_json(lowbit_cli, tmp_path, "ppl", stories_gguf, "--text", tinystories_text, "--ctx", CTX,
                   "--chunks", CHUNKS, "--no-progress", "-t", stories.threads)
    assert r["chunks"] == cli["chunks"] == CHUNKS
    assert r["tokens_scored"] == cli["tokens_scored"] and r["text_tokens"] == cli["text_tokens"]
    for key in ("ppl", "ppl_stderr", "nll", "nll_stderr"):
        assert r[key] == pytest.approx(cli[key], rel=1e-12, abs=0), key
    gptq = lowbit.perplexity(stories, text, ctx=CTX, chunks=CHUNKS, protocol="gptq")
    assert gptq["tokens_scored"] == CHUNKS * (CTX - 1)


@pytest.fixture(scope="session")
def quantized(stories_gguf, tinystories_text, tmp_path_factory):
    """stories260K by q4_0-gptq (Q4_0 linears where the shape allows), calibrated on the TinyStories sample."""
    out = tmp_path_factory.mktemp("q") / "stories_q4_0.lowbit"
    report = lowbit.quantize_model(str(stories_gguf), "q4_0-gptq", str(out), calib=str(tinystories_text),
                                   calib_samples=8, calib_len=128, seed=1)
    return out, report


def test_quantize_model_writes_what_the_cli_writes(quantized, stories_gguf, tinystories_text, lowbit_cli, tmp_path):
    out, report = quantized
    assert out.exists() and report["output"] == str(out) and report["recipe"] == "q4_0-gptq"
    assert report["file_bytes"] == out.stat().st_size
    assert {m["format"] for m in report["modules"]} >= {"q4_0"}
    cli_out = tmp_path / "cli.lowbit"
    cli = cli_json(lowbit_cli, tmp_path, "quantize", stories_gguf, "--recipe", "q4_0-gptq", "--calib",
                   tinystories_text, "--calib-samples", 8, "--calib-len", 128, "--seed", 1, "-o", cli_out,
                   "--no-progress")
    assert cli["linear_bits_per_weight"] == report["linear_bits_per_weight"]
    assert [m["format"] for m in cli["modules"]] == [m["format"] for m in report["modules"]]
    assert cli_out.read_bytes() == out.read_bytes()


def test_bf16_calibration_writes_what_the_cli_writes(stories_gguf, tinystories_text, lowbit_cli, tmp_path):
    out = tmp_path / "bf16.lowbit"
    report = lowbit.quantize_model(str(stories_gguf), "w4g128-gptq", str(out), calib=str(tinystories_text),
                                   calib_samples=4, calib_len=128, seed=1, calib_arith="bf16")
    assert report["calibration"]["arithmetic"] == "bf16" and report["calibration"]["hessian"] == "bf16"
    cli_out = tmp_path / "cli.lowbit"
    cli_json(lowbit_cli, tmp_path, "quantize", stories_gguf, "--recipe", "w4g128-gptq", "--calib", tinystories_text,
             "--calib-samples", 4, "--calib-len", 128, "--seed", 1, "--calib-arith", "bf16", "-o", cli_out,
             "--no-progress")
    assert cli_out.read_bytes() == out.read_bytes()
    with pytest.raises(ValueError, match="calib_arith"):
        lowbit.quantize_model(str(stories_gguf), "w4g128-gptq", str(tmp_path / "x.lowbit"), calib_arith="fp16")


def test_kld_against_the_base_equals_the_cli(quantized, stories, stories_gguf, tinystories_text, text, lowbit_cli,
                                             tmp_path):
    out, _ = quantized
    q = lowbit.load_model(str(out))
    r = lowbit.perplexity(q, text, ctx=CTX, chunks=CHUNKS, base=stories)
    cli = cli_json(lowbit_cli, tmp_path, "ppl", out, "--text", tinystories_text, "--ctx", CTX, "--chunks", CHUNKS,
                   "--base", stories_gguf, "--no-progress", "-t", q.threads)
    for key in ("ppl", "base_ppl", "kld_mean", "kld_stderr", "kld_max", "top1_agree", "delta_p_mean"):
        assert r[key] == pytest.approx(cli[key], rel=1e-12, abs=0), key
    assert 0 < r["kld_mean"] < 0.5 and r["top1_agree"] > 0.5


def test_export_to_gguf_carries_the_quantized_model(quantized, text, tmp_path):
    out, _ = quantized
    gguf = tmp_path / "stories_q4_0.gguf"
    report = lowbit.export(str(out), str(gguf), to="gguf", exact=True)
    assert gguf.exists() and report["output_bytes"] == gguf.stat().st_size
    assert report["requantized"] == 0 and report["converted_exactly"] == report["tensors"]
    exported = lowbit.load_model(str(gguf))
    original = lowbit.load_model(str(out))
    ids = exported.tokenize(text[:400], bos=True)
    np.testing.assert_allclose(exported.logits(ids), original.logits(ids), atol=1e-4, rtol=0)
    with pytest.raises(lowbit.LowbitError, match="exists"):
        lowbit.export(str(out), str(gguf), to="gguf")
    again = lowbit.export(str(out), str(gguf), to="gguf", force=True)
    assert again["output_bytes"] == report["output_bytes"]


def test_errors_raise_instead_of_crashing(stories, stories_gguf, tmp_path):
    with pytest.raises(lowbit.LowbitError, match="no_such_model"):
        lowbit.load_model(str(tmp_path / "no_such_model.gguf"))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(lowbit.LowbitError, match="garbage.gguf"):
        lowbit.load_model(str(garbage))
    with pytest.raises(lowbit.LowbitError, match="outside the vocabulary"):
        stories.logits([1, 512])
    with pytest.raises(lowbit.LowbitError, match="outside the vocabulary"):
        stories.logits([-1])
    with pytest.raises(ValueError, match="no tokens"):
        stories.logits([])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        stories.detokenize([600])
    with pytest.raises(lowbit.LowbitError, match="protocol"):
        lowbit.perplexity(stories, "some text", protocol="wiki")
    with pytest.raises(lowbit.LowbitError):
        lowbit.perplexity(stories, "too short", ctx=128)
    with pytest.raises(ValueError, match="threads"):
        stories.threads = 0
    with pytest.raises(lowbit.LowbitError, match="no_such_recipe"):
        lowbit.quantize_model(str(stories_gguf), "no_such_recipe", str(tmp_path / "x.lowbit"))
    with pytest.raises(lowbit.LowbitError, match="calib"):
        lowbit.quantize_model(str(stories_gguf), "w4g128-gptq", str(tmp_path / "x.lowbit"))
    with pytest.raises(lowbit.LowbitError, match="onnx"):
        lowbit.export(str(stories_gguf), str(tmp_path / "x.onnx"), to="onnx")
    with pytest.raises(TypeError):
        lowbit.perplexity("not a model", "text")
    assert "q4_0-gptq" in lowbit.recipes()
