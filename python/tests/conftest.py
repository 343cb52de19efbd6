"""Paths the lowbit pytest suite reads, found as the C++ tests find them.

LOWBIT_SHARED_DIR: shared test material (default ../shared beside the repository);
LOWBIT_CLI: the lowbit binary the CLI comparisons run (default build/lowbit).
Tests that need a missing file skip with a message naming it.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("LOWBIT_SHARED_DIR") or REPO.parent / "shared")


def require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found: {path} (set LOWBIT_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def stories_dir() -> Path:
    return require(shared_dir() / "models" / "stories260K", "stories260K")


@pytest.fixture(scope="session")
def stories_gguf(stories_dir) -> Path:
    return require(stories_dir / "stories260K.gguf", "stories260K.gguf")


@pytest.fixture(scope="session")
def tinystories_text() -> Path:
    return require(shared_dir() / "data" / "tinystories" / "tinystories_sample.txt", "TinyStories sample")


@pytest.fixture(scope="session")
def lowbit_cli() -> Path:
    cli = Path(os.environ.get("LOWBIT_CLI") or REPO / "build" / "lowbit")
    if not cli.exists():
        pytest.skip(f"lowbit CLI not found: {cli} (set LOWBIT_CLI)")
    return cli
