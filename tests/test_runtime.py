"""sysa_core.runtime: the training device and the thread limits."""
from __future__ import annotations

import pytest
import torch

from sysa_core import runtime
from sysa_core.errors import UserError


def test_resolve_device(monkeypatch):
    monkeypatch.delenv("SYSA_DEVICE", raising=False)
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("SYSA_DEVICE", "cpu")
    assert runtime.resolve_device("auto") == torch.device("cpu")
    for bad in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(UserError, match="unknown device"):
            runtime.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            runtime.resolve_device("cuda:0")


def test_limited_caps_and_restores_the_threads():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with runtime.limited(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with runtime.limited(None):
        assert torch.get_num_threads() == before
