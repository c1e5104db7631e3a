"""The ``lineage`` command: every command, --json equals to_dict(), errors, help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lineage
from lineage.cli import build_parser, main


def _pipeline(uri: str, folder: Path) -> None:
    """Two runs of prep → train with @step, in experiment 'iris'."""
    store = lineage.connect(uri)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "iris.csv"
    data.write_text("a,b\n1,2\n3,4\n")

    @lineage.step(store=store)
    def prep(data: lineage.Dataset, drop_na: bool = True) -> lineage.Dataset:
        out = folder / "clean.csv"
        out.write_text(Path(data.uri).read_text().upper())
        return lineage.Dataset(out, name="clean")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10) -> lineage.Model:
        out = folder / f"model-{lr}.pkl"
        out.write_text(f"model {lr}")
        lineage.log_metrics({"acc": round(0.9 + lr, 3)})
        return lineage.Model(out, name="clf")

    for name, lr in [("baseline", 0.05), ("tuned", 0.02)]:
        with lineage.run(name, experiment="iris", store=store, params={"seed": 1}):
            train(prep(lineage.Dataset(data, name="iris")), lr=lr)
    store.close()


@pytest.fixture
def cli_store(tmp_path: Path) -> str:
    uri = str(tmp_path / "store" / "metadata.sqlite")
    _pipeline(uri, tmp_path / "files")
    return uri


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


COMMANDS = ["ls", "run", "which", "show", "provenance", "impact", "diff", "verify", "compare", "graph", "audit",
            "approve", "attest", "reproduce", "export", "import", "plot", "ui", "tag",
            "note", "checkout", "push", "pull", "gc", "du", "fingerprint", "doctor"]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out
        code, out_cmd, _ = run(capsys, command, "--help")
        assert code == 0 and out_cmd.startswith("usage: lineage " + command), command
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)  # type: ignore[attr-defined]


def test_json_output_is_exactly_to_dict(cli_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = lineage.connect(cli_store, read_only=True)
    cases: list[tuple[list[str], Any]] = [
        (["provenance", "clf"], store.provenance("clf").to_dict()),
        (["provenance", "clf@1"], store.provenance("clf@1").to_dict()),
        (["impact", "iris"], store.impact("iris").to_dict()),
        (["diff", "clf@1", "clf@2"], store.diff("clf@1", "clf@2").to_dict()),
        (["verify"], store.verify().to_dict()),
        (["verify", "clf"], store.verify("clf").to_dict()),
        (["compare", "baseline", "tuned"], store.compare(["baseline", "tuned"]).to_dict()),
        (["ls", "runs"], store.search_runs().to_dict()),
        (["ls", "executions", "--step", "train"], [e.to_dict() for e in store.executions(step="train")]),
    ]
    for argv, expected in cases:
        code, out, err = run(capsys, "--store", cli_store, argv[0], "--json", *argv[1:])
        assert code == 0, (argv, err)
        assert json.loads(out) == as_json(expected), argv


def test_readable_output(cli_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--store", cli_store, "provenance", "clf")
    assert code == 0
    assert out.splitlines()[0].startswith("Model clf v2  artifact:")
    assert "└── train  execution:" in out and "lr=0.02" in out and "run tuned (iris)" in out
    assert "Dataset iris v1" in out
    code, out, _ = run(capsys, "--store", cli_store, "diff", "clf@1", "clf@2")
    assert "train.lr: 0.05 -> 0.02" in out
    code, out, _ = run(capsys, "--store", cli_store, "compare", "baseline", "tuned")
    lines = out.splitlines()
    assert lines[0].split() == ["baseline", "tuned"]
    assert lines[2].startswith("* ")  # differing rows first
    code, out, _ = run(capsys, "--store", cli_store, "impact", "iris")
    assert "Model (2)" in out
    code, out, _ = run(capsys, "--store", cli_store, "ls")
    assert "clf" in out and "iris" in out
    code, out, _ = run(capsys, "--store", cli_store, "ls", "artifacts", "--type", "Model", "--json")
    assert [a["name"] for a in json.loads(out)] == ["clf", "clf"]
    code, out, _ = run(capsys, "--store", cli_store, "ls", "executions", "--run", "baseline",
                       "--state", "COMPLETE")
    assert out.count("execution:") == 2
    code, out, _ = run(capsys, "--store", cli_store, "show", "iris")
    assert out.startswith("Dataset iris v1") and "fingerprint: sha256:" in out
    code, out, _ = run(capsys, "--store", cli_store, "show", "execution:1", "--json")
    assert json.loads(out)["name"] == "prep"


def test_verify_exit_status_reports_changes(cli_store: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--store", cli_store, "verify")[0] == 0
    (tmp_path / "files" / "iris.csv").write_text("tampered\n")
    code, out, _ = run(capsys, "--store", cli_store, "verify", "clf")
    assert code == 1 and "CHANGED" in out and out.splitlines()[-1].startswith("FAILED")


def test_errors_are_one_line_without_traceback(cli_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--store", cli_store, "provenance", "no-such-model")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "no artifact named 'no-such-model'" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "--debug", "--store", cli_store, "provenance", "no-such-model")
    assert code == 1 and "Traceback" in err
    code, _, err = run(capsys, "--store", cli_store, "compare", "no-run")
    assert code == 1 and "no run 'no-run'" in err
    code, _, err = run(capsys, "--store", cli_store, "show", "execution:999")
    assert code == 1 and "no execution with id 999" in err


def test_usage_errors_exit_2(cli_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "bogus")[0] == 2
    assert run(capsys, "--store", cli_store, "diff", "clf")[0] == 2
    assert run(capsys, "--store", cli_store, "graph", "-o", "x.svg", "--upstream")[0] == 2
    assert run(capsys, "--store", cli_store, "graph", "clf", "--run", "baseline", "-o", "x.svg")[0] == 2
    assert run(capsys, "--store", cli_store, "graph", "clf")[0] == 2  # -o is required
    assert run(capsys, "--store", cli_store, "ls", "artifacts", "--run", "baseline")[0] == 2
    code, _, err = run(capsys, "--store", cli_store, "audit")
    assert code == 2 and "REF" in err
    code, _, err = run(capsys, "--store", cli_store, "audit", "clf", "--sign", "k.pem")
    assert code == 2 and "-o FILE" in err
    code, _, err = run(capsys, "--store", cli_store, "attest", "clf")
    assert code == 2 and "-o FILE" in err
    code, _, err = run(capsys, "attest", "--verify", "x.json")
    assert code == 2 and "--key" in err


def test_read_only_commands_do_not_create_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing" / "metadata.sqlite"
    code, _, err = run(capsys, "--store", str(missing), "ls")
    assert code == 1 and err.count("\n") == 1
    assert not missing.exists()


def test_graph_and_audit_commands(cli_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["clf"], ["clf", "--downstream"], ["--run", "baseline"], []):
        out_file = tmp_path / f"g{len(argv)}{'d' if '--downstream' in argv else ''}.dot"
        code, out, err = run(capsys, "--store", cli_store, "graph", *argv, "-o", str(out_file))
        assert code == 0, err
        assert out_file.read_text().startswith(("digraph", "strict digraph", "//"))
    report = tmp_path / "audit.html"
    code, _, err = run(capsys, "--store", cli_store, "audit", "clf", "-o", str(report))
    assert code == 0, err
    assert "<svg" in report.read_text()
    assert run(capsys, "audit", "--check", str(report))[0] == 0
    report.write_text(report.read_text().replace("clf", "CLF"))
    code, out, _ = run(capsys, "audit", "--check", str(report))
    assert code == 1 and "MODIFIED" in out


@pytest.mark.postgres
def test_cli_on_postgresql_never_prints_the_password(pg_uri: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import PG_PASSWORD

    _pipeline(pg_uri, tmp_path / "files")
    code, out, err = run(capsys, "--store", pg_uri, "provenance", "clf", "--json")
    assert code == 0 and json.loads(out)["target"]["version"] == 2
    code, out, err = run(capsys, "--store", pg_uri, "provenance", "nope")
    assert code == 1 and PG_PASSWORD not in err and PG_PASSWORD not in out
    assert "***" in err


def test_console_script_runs(cli_store: str) -> None:
    exe = Path(sys.executable).parent / "lineage"
    assert exe.exists(), "pip install -e . installs the `lineage` console script"
    proc = subprocess.run([str(exe), "--store", cli_store, "provenance", "clf", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LINEAGE_URI": ""})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"]["name"] == "clf"
