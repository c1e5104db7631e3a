"""The two ml-metadata lines: pins, the installed pair, generated code, package data.

These run on whichever line is installed: ``make test`` (1.17 on Python 3.11) and
``make test-compat`` (1.21 on Python 3.13 in a Debian 13 root, 1.15 on Python 3.10).
"""

from __future__ import annotations

import glob
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import lineage
from lineage import _compat

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Versions published on PyPI, per line (1.18 to 1.20 never were).
PUBLISHED_MLMD = ["1.15.0", "1.16.0", "1.17.0", "1.17.1", "1.21.0"]
#: One release of each protobuf major, as the lines use them.
PROTOBUF = {4: "4.25.9", 5: "5.29.5", 6: "6.33.6"}
PYTHONS = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14)]


def _requirements(name: str, python: tuple[int, int]) -> list[Requirement]:
    env = {"python_version": f"{python[0]}.{python[1]}",
           "python_full_version": f"{python[0]}.{python[1]}.0"}
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return [r for r in reqs if r.name == name
            and (r.marker is None or Marker(str(r.marker)).evaluate(env))]


def _supported(python: tuple[int, int]) -> list[_compat.Line]:
    return [line for line in _compat.LINES if python in line.pythons]


@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: f"py{p[0]}{p[1]}")
def test_pins_offer_exactly_the_lines_that_support_each_python(python: tuple[int, int]) -> None:
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    lines = _supported(python)
    assert (f"{python[0]}.{python[1]}.0" in requires) == bool(lines)
    if not lines:
        return
    [mlmd] = _requirements("ml-metadata", python)
    [protobuf] = _requirements("protobuf", python)
    offered = {_compat.line_for(Version(v).release).name
               for v in PUBLISHED_MLMD if mlmd.specifier.contains(v)}
    assert offered == {line.name for line in lines}
    majors = {major for major, v in PROTOBUF.items() if protobuf.specifier.contains(v)}
    assert majors == {major for line in lines for major in line.protobuf}


def test_dev_extra_keeps_make_proto_where_its_protoc_installs() -> None:
    dev = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]
    [tools] = [r for r in dev if r.name == "grpcio-tools"]
    assert tools.specifier.contains("1.62.3") and not tools.specifier.contains("1.63.0")
    assert tools.marker is not None
    assert tools.marker.evaluate({"python_version": "3.11"})
    assert not tools.marker.evaluate({"python_version": "3.12"})


def test_installed_pair_is_one_supported_line() -> None:
    import google.protobuf
    import ml_metadata

    line = _compat.line()
    assert ".".join(map(str, _compat.mlmd_version())) == ml_metadata.__version__
    assert _compat.protobuf_version()[0] in line.protobuf, google.protobuf.__version__
    assert sys.version_info[:2] in line.pythons
    glibc = _compat.glibc_version()
    if glibc is not None:
        assert glibc >= line.glibc
    facts = _compat.versions()
    assert facts["ml-metadata"] == ml_metadata.__version__
    assert facts["protobuf"] == google.protobuf.__version__


def test_line_for_rejects_versions_outside_both_lines() -> None:
    assert _compat.line_for((1, 17, 1)).name == "1.15"
    assert _compat.line_for((1, 21, 0)).filter_queries is False
    for version in ((1, 14, 0), (1, 19, 0), (1, 22, 0)):
        with pytest.raises(LookupError, match=r"not supported by lineage \(supported: 1.15-1.17, 1.21-1.21\)"):
            _compat.line_for(version)


def test_filter_queries_work_exactly_on_the_line_that_has_them() -> None:
    # What _compat.LINES says each line cannot do, checked against the real MLMD.
    # lineage itself never sends a filter query (tests/test_store.py).
    store = lineage.connect(":memory:")
    data = store.put(lineage.Metrics({"acc": 0.5}, name="m"))
    options = metadata_store.ListOptions(filter_query=f"id = {data.id}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 1.17 announces the removal
        if _compat.line().filter_queries:
            found = store._call("get_artifacts", list_options=options)
            assert [a.id for a in found] == [data.id]
        else:
            with pytest.raises(lineage.StoreError, match="filter_query is not supported"):
                store._call("get_artifacts", list_options=options)


def test_generated_code_loads_on_protobuf_4_25_and_6() -> None:
    # protoc 25 gencode carries no runtime version gate (newer protoc's gencode imports
    # google.protobuf.runtime_version, which protobuf 4 lacks): it loads on both lines.
    generated = sorted((ROOT / "lineage" / "_proto").rglob("*_pb2.py"))
    assert generated
    for path in generated:
        text = path.read_text()
        assert "runtime_version" not in text, path
        assert re.search(r"^# Protobuf Python Version: 4\.25\.", text, flags=re.M), path
    from lineage._proto.lineage.v1 import bundle_pb2

    bundle = bundle_pb2.Bundle()
    bundle.artifacts.add(id=1, type="Dataset", name="d")
    assert bundle_pb2.Bundle.FromString(bundle.SerializeToString()) == bundle


def test_package_data_globs_cover_every_non_module_file() -> None:
    # make test-wheel checks the built wheel; this says early which file would be missing.
    package = ROOT / "lineage"
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["lineage"]
    for needed in ("ui/static/**", "ui/templates/**", "**/*.json", "py.typed"):
        assert needed in patterns
    # setuptools expands these with glob(recursive=True), where a trailing ** matches files
    covered = {package / hit for pattern in patterns
               for hit in glob.glob(pattern, root_dir=package, recursive=True)
               if (package / hit).is_file()}
    data = {p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts}
    assert data, "py.typed and the .pyi stubs at least"
    assert sorted(str(p.relative_to(ROOT)) for p in data - covered) == []


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    [backend] = PYPROJECT["build-system"]["requires"]
    # license-files and SPDX strings need setuptools 77.
    assert Requirement(backend).specifier.contains("77.0.0")
    assert not Requirement(backend).specifier.contains("76.0.0")
