"""Hostile input: error paths in linear time, limits on names, URIs, refs and ids, terminal
control characters kept away from the terminal, and a LineageError (never an "internal
error") for every bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import lineage
from lineage.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _child(code: str, *, cpu_seconds: int = 30, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child limited to ``cpu_seconds`` of CPU (a quadratic path on a few
    megabytes needs hours: it is killed, and the test fails)."""
    prologue = ("import resource\n"
                f"resource.setrlimit(resource.RLIMIT_CPU, ({cpu_seconds}, {cpu_seconds}))\n")
    try:
        return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child ran for over {timeout:g} s")


# --- error paths run in linear time ------------------------------------------------------


def test_redaction_of_megabytes_finishes_within_a_small_cpu_budget() -> None:
    done = _child("""
        from lineage.errors import redact
        from lineage.secrets import redact_text
        hostile = ["a" * 2_000_000, "a://" * 500_000, "a://b:" * 300_000,
                   "https://u:p@h " * 100_000, "password=" * 200_000, "x:" * 1_000_000]
        for text in hostile:
            redact(text, ["secret"])
            redact_text(text, ["secret-value"])
        print("done")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-500:]


def test_redaction_still_finds_every_password() -> None:
    from lineage.errors import redact

    text = ("a postgresql://me:hunter2@db/x b mysql://root:p@ss@h:3306/y "
            "c https://u:pw@host/path?token=1 " + "z" * 10_000 + " s3://AK:SECRETKEY@bucket/k")
    out = redact(text)
    for secret in ("hunter2", "p@ss", ":pw@", "SECRETKEY"):
        assert secret not in out
    assert out.count("***") == 4


@pytest.mark.postgres
def test_a_ten_megabyte_name_is_refused_at_once_on_postgres(pg_uri: str) -> None:
    done = _child(f"""
        import lineage
        store = lineage.connect({pg_uri!r})
        try:
            store.put(lineage.Metrics({{"a": 1}}, name="n" * 10_000_000))
        except lineage.ArtifactError as exc:
            print("refused:", str(exc)[:200])
    """, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "refused: the Metrics name is 10,000,000 characters long; the limit is 200" in done.stdout


# --- limits on names, URIs, refs, ids ---------------------------------------------------


@pytest.mark.parametrize("name", ["x" * 201, "bad\ud800name", "nul\x00name"])
def test_bad_names_are_refused_before_anything_is_written(name: str, tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "meta.sqlite")
    with pytest.raises(lineage.ArtifactError):
        store.put(lineage.Metrics({"a": 1}, name=name))
    with pytest.raises(lineage.StepError):
        lineage.step(name=name, store=store)(lambda: None)
    with pytest.raises(lineage.StepError), lineage.run(name, store=store):
        pass
    with pytest.raises(lineage.StepError), lineage.run("ok", experiment=name, store=store):
        pass

    @lineage.step(store=store)
    def f(**kwargs: int) -> None:
        return None

    with pytest.raises(lineage.StepError, match="parameter name"):
        f(**{name: 1})
    with pytest.raises(lineage.StepError, match="parameter name"), lineage.run(
            "params", store=store, params={name: 1}):
        pass
    assert store.artifacts() == [] and store.executions() == []
    assert [r.name for r in store.runs()] == []


def test_the_limits_are_in_the_messages(tmp_path: Path) -> None:
    with pytest.raises(lineage.ArtifactError, match=r"the limit is 200 characters"):
        lineage.Metrics({"a": 1}, name="m" * 300)
    with pytest.raises(lineage.ArtifactError, match=r"the limit is 2,048 bytes"):
        lineage.Dataset("s3://bucket/" + "k" * 5000, name="d")
    with pytest.raises(lineage.InvalidRef, match=r"the limit is 232 characters"):
        lineage.connect(":memory:").get("r" * 10_000)


HOSTILE_REFS = [
    "artifact:99999999999999999999", "99999999999999999999", "artifact:-1", "artifact:",
    "artifact:1e3", "m@99999999999999999999", "m@", "@", "\ud800", "x\x00y", "r" * 100_000,
    "context:abc", "execution:99999999999999999999", "' OR 1=1 --", "m@1@2", "*", "%",
]


@pytest.mark.parametrize("ref", HOSTILE_REFS, ids=lambda r: repr(r)[:30])
def test_every_hostile_ref_is_a_lineage_error_in_the_api(ref: str) -> None:
    store = lineage.connect(":memory:")
    store.put(lineage.Metrics({"a": 1}, name="m"))
    for call in (lambda: store.get(ref), lambda: store.provenance(ref),
                 lambda: store.impact(ref), lambda: store.executions(run=ref),
                 lambda: store.verify(ref), lambda: store.compare([ref])):
        with pytest.raises(lineage.LineageError):
            call()
    for big in (2**63, 2**70, -(2**70)):
        with pytest.raises(lineage.LineageError):
            store.get(big)
        with pytest.raises(lineage.LineageError):
            store.executions(run=big)


@pytest.mark.parametrize("ref", HOSTILE_REFS, ids=lambda r: repr(r)[:30])
def test_the_cli_never_says_internal_error_for_a_users_ref(
    ref: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "meta.sqlite")
    lineage.connect(path).put(lineage.Metrics({"a": 1}, name="m"))
    for argv in (["show", ref], ["provenance", ref], ["impact", ref], ["diff", "m", ref],
                 ["verify", ref], ["compare", ref], ["ls", "executions", "--run", ref],
                 ["graph", ref, "-o", str(tmp_path / "g.dot")],
                 ["export", ref, "--format", "prov", "-o", str(tmp_path / "p.json")]):
        code = main(["--store", path, *argv])
        err = capsys.readouterr().err
        assert code in (1, 2), (argv, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        assert len(err) < 2000, (argv, err[:200])


# --- terminal control characters --------------------------------------------------------

ESC_NAME = "evil\x1b[2J\x1b]0;pwned\x07\rname\u202e"
_RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_control_characters_in_the_store_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "meta.sqlite")
    store = lineage.connect(path)
    data = tmp_path / "d.csv"
    data.write_text("a\n")

    @lineage.step(name="step\x1b[31m", store=store)
    def clean(d: lineage.Dataset, mode: str = "x\x1b[8m\r") -> lineage.Dataset:
        return lineage.Dataset(tmp_path / "d.csv", name=ESC_NAME + "-out")

    @lineage.step(store=store)
    def boom(d: lineage.Dataset) -> None:
        raise ValueError("bad \x1b[2J\x07 input\r")

    with lineage.run(ESC_NAME, experiment="exp\x1b[5m", store=store,
                     params={"p\x1b[1m": "v\x1b[0m"}):
        out = clean(lineage.Dataset(data, name=ESC_NAME))
        with pytest.raises(ValueError):
            boom(out)
    with lineage.run("second", store=store):
        clean(out)
    refs = [str(out.id), "execution:2"]
    commands = [["ls"], ["ls", "executions"], ["ls", "runs"], ["show", refs[0]],
                ["show", refs[1]], ["provenance", refs[0]], ["impact", "1"],
                ["diff", "1", refs[0]], ["verify"], ["compare", ESC_NAME, "second"],
                ["show", ESC_NAME]]
    for argv in commands:
        main(["--store", path, *argv])
        captured = capsys.readouterr()
        for stream in (captured.out, captured.err):
            assert not _RAW.search(stream), (argv, stream[:300])
    main(["--store", path, "ls"])
    assert "\\x1b[2J" in capsys.readouterr().out  # shown, escaped


# --- every bad input is a LineageError --------------------------------------------------


def test_bad_inputs_of_every_kind_raise_lineage_errors(tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "meta.sqlite")
    with pytest.raises(lineage.ArtifactError):
        lineage.Dataset("s3://bucket/\ud800", name="d")

    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"/tmp/x"

    with pytest.raises(lineage.ArtifactError, match="not bytes"):
        lineage.Dataset(BytesPath(), name="d")  # type: ignore[arg-type]
    with pytest.raises(lineage.LineageError):
        store.executions_by_id([2**64])
    with pytest.raises(lineage.LineageError):
        store.artifacts_by_id([2**64])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(lineage.LineageError):
            store.get("\udcff")
    assert store.artifacts() == []
