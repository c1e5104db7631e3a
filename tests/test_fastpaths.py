"""The shortcuts of the step hot path give what the general code gives."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage.fingerprint import _CHUNK, fingerprint

VALUES: list[Any] = [
    0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, True, False, 0.0, -0.0,
    0.05, 1e-7, 3.14159265, 1e300, math.inf, -math.inf, "", "x", "é" * 400, "é" * 700,
    "a" * 2500, None, [1, "a"], (2.5, None), {}, {"acc": 0.9, "n": [1, 2]},
    {"big": "y" * 3000},
]


@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_set_value_in_place_equals_to_value(value: Any, typed: bool) -> None:
    reference = _convert.to_value(value, typed=typed)
    target = pb.Value(string_value="previous content")
    _convert.set_value(target, value, typed=typed)
    assert target.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )
    assert target.WhichOneof("value") == reference.WhichOneof("value")


def test_set_value_refuses_what_to_value_refuses() -> None:
    target = pb.Value(int_value=4)
    with pytest.raises(TypeError):
        _convert.set_value(target, object())
    assert target.int_value == 4  # left as it was


def test_nan_encodes_like_to_value() -> None:
    target = pb.Value()
    _convert.set_value(target, math.nan)
    assert math.isnan(_convert.from_value(target))


@pytest.mark.parametrize("size", [0, 1, 4096, _CHUNK, _CHUNK + 1, 3 * _CHUNK + 5])
def test_file_fingerprints_small_and_chunked_agree_with_hashlib(tmp_path: Path, size: int) -> None:
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(i % 251 for i in range(size)))
    assert fingerprint(f) == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    assert fingerprint(str(f)) == fingerprint(f)
