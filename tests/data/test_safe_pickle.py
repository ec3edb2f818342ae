"""The restricted unpickler: every protocol loads; code-running pickles are refused unrun."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from i2m2.data.mimic import load_mimic
from i2m2.data.safe_pickle import safe_load_pickle
from i2m2.errors import DataError
from tests.helpers.mimic import make_arrays, write_pickle


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_protocol_loads(tmp_path, protocol):
    arrays = make_arrays(n=20)
    loaded = safe_load_pickle(write_pickle(tmp_path / "im.pk", arrays, protocol))
    assert set(loaded) == set(arrays)
    for key, value in arrays.items():
        assert np.array_equal(loaded[key], value)


class _RunsCode:
    """Unpickling this would call os.system: the classic malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _CallsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    arrays = make_arrays(n=20)
    path = write_pickle(tmp_path / "im.pk", {**arrays, "payload": _RunsCode(marker)})
    with pytest.raises(DataError) as info:
        load_mimic(path, "mortality")
    assert f"refusing to load '{os.system.__module__}.system'" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()
    with pytest.raises(DataError, match=r"refusing to load 'builtins\.eval'"):
        safe_load_pickle(write_pickle(tmp_path / "eval.pk", [_CallsEval()]))


def test_codecs_is_limited_to_latin1(tmp_path):
    # protocol 2 stores bytes as _codecs.encode(text, 'latin1'); any other codec is refused
    path = tmp_path / "codec.pk"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load_pickle(path)
    assert safe_load_pickle(write_pickle(tmp_path / "ok.pk", b"\xff\x00", protocol=2)) == b"\xff\x00"
