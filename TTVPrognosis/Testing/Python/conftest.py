"""Shared pytest fixtures: the validation data folder (skipped when absent) and MRML set-up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helpers (shared_data, synthetic_ct)

from shared_data import SKIP_REASON, shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    folder = shared_data_dir()
    if folder is None:
        pytest.skip(SKIP_REASON)
    return folder
