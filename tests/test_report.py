"""Audit reports: contents, escaping of hostile store values, self-containedness, digest
checks, Markdown, and a real headless Chromium reading the HTML back."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import lineage
import lineage.report
from lineage.report import audit, check

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = "/usr/bin/chromium"

EVIL = 'x"]; evil -> y; <script>alert(1)</script>'
EVIL_IMG = "<img src=x onerror=alert(2)>"
EVIL_LINK = "[click](https://evil.example/steal) | cell | <a href='https://evil.example'>a</a>"


class _Parsed(html.parser.HTMLParser):
    """Every tag, attribute and text node of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _parse(text: str) -> _Parsed:
    parser = _Parsed()
    parser.feed(text)
    parser.close()
    return parser


def _record(store: lineage.Store, folder: Path, *, evil: bool = False) -> lineage.Model:
    """raw data → prep → train (a failed attempt first) → model, in one run."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "iris.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    name = EVIL if evil else "iris"

    @lineage.step(store=store)
    def prep(raw: lineage.Dataset, seed: int = 7, note: str = "plain") -> lineage.Dataset:
        out = folder / "train.csv"
        out.write_text(raw.path.read_text() if raw.path else "")
        return lineage.Dataset(out, name=EVIL_IMG if evil else "train")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10) -> lineage.Model:
        if lr > 1:
            raise ValueError(EVIL if evil else f"lr {lr} diverges")
        out = folder / "model.bin"
        out.write_text(f"lr={lr}")
        return lineage.Model(out, name=EVIL_LINK if evil else "clf")

    with lineage.run("baseline", experiment="iris", store=store):
        raw = (lineage.Dataset(data, name=name, source=EVIL_LINK, license=EVIL_IMG) if evil
               else lineage.Dataset(data, name=name))
        clean = prep(raw, note=EVIL if evil else "plain")
        with pytest.raises(ValueError):
            train(clean, lr=5.0)
        model: lineage.Model = train(clean, lr=0.05)
    return model


# --- contents ----------------------------------------------------------------------------


def test_html_report_has_everything_an_auditor_needs(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    model = _record(sqlite_store, tmp_path / "w")
    (tmp_path / "w" / "iris.csv").write_text("edited after training\n")
    out = audit(sqlite_store, model, tmp_path / "report.html")
    assert out == tmp_path / "report.html"
    text = out.read_text()
    doc = _parse(text)
    words = doc.all_text
    raw, clean = sqlite_store.get("iris"), sqlite_store.get("train")
    # the target with its fingerprint
    assert "Audit report: clf v1" in words and model.fingerprint and model.fingerprint in words
    # every dataset with uri, version, fingerprint and verification now
    datasets = re.search(r'<table id="datasets">.*?</table>', text, re.S)
    assert datasets is not None
    rows = _parse(datasets.group(0)).all_text
    for ds in (raw, clean):
        assert ds.uri in rows and str(ds.fingerprint) in rows
    assert re.search(r"iris 1 Dataset \S+iris\.csv sha256:\w+ changed", rows)
    assert re.search(r"train 1 Dataset \S+train\.csv sha256:\w+ ok", rows)
    # every step with params, state, duration, code version and environment
    steps = re.search(r'<table id="steps">.*?</table>', text, re.S)
    assert steps is not None
    steps_text = _parse(steps.group(0)).all_text
    prep_exec, train_exec = (sqlite_store.executions(step=s, state="COMPLETE")[0]
                             for s in ("prep", "train"))
    assert "seed = 7" in steps_text and "lr = 0.05" in steps_text and "epochs = 10" in steps_text
    assert steps_text.count("COMPLETE") == 2
    assert str(train_exec.properties["source_hash"]) in steps_text
    assert f"python = {prep_exec.properties['python']}" in steps_text
    assert re.search(r"\d+(\.\d+)? (ms|s)\b", steps_text)  # a duration
    assert "baseline (experiment iris)" in steps_text
    # failed executions along the way
    along = re.search(r'<table id="along">.*?</table>', text, re.S)
    assert along is not None
    along_text = _parse(along.group(0)).all_text
    assert "FAILED" in along_text and "lr 5.0 diverges" in along_text and "lr = 5.0" in along_text
    # when, from which store, the diagram, the digest
    assert re.search(r'<time id="generated-at">\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</time>', text)
    assert sqlite_store.uri in words
    assert "<svg" in text and "Provenance of clf v1" in words
    target = re.search(r'<table id="target">.*?</table>', text, re.S)
    assert target is not None and "verified now ok" in _parse(target.group(0)).all_text
    assert check(out).ok


def test_cached_steps_are_listed(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("1\n")

    @lineage.step(store=sqlite_store, cache=True)
    def prep(raw: lineage.Dataset) -> lineage.Dataset:
        out = tmp_path / "clean.csv"
        out.write_text("clean")
        return lineage.Dataset(out, name="clean")

    for run in ("first", "second"):
        with lineage.run(run, store=sqlite_store):
            prep(lineage.Dataset(data, name="d"))
    text = audit(sqlite_store, "clean")
    assert isinstance(text, str)
    steps = re.search(r'<table id="steps">.*?</table>', text, re.S)
    assert steps is not None and "CACHED" in _parse(steps.group(0)).all_text


@pytest.mark.postgres
def test_store_password_is_redacted(pg_uri: str, tmp_path: Path) -> None:
    from conftest import PG_PASSWORD

    store = lineage.connect(pg_uri)
    model = _record(store, tmp_path / "w")
    for suffix in ("html", "md"):
        text = audit(store, model, tmp_path / f"r.{suffix}").read_text()
        assert PG_PASSWORD not in text
        assert "postgresql://postgres:***@127.0.0.1" in text.replace("\\", "")


# --- escaping and self-containedness --------------------------------------------------------


def test_hostile_store_values_never_become_markup(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _record(sqlite_store, tmp_path / "w", evil=True)
    lineage.approve(sqlite_store, model, by=EVIL_IMG, note=EVIL_LINK + "\x1b[31m")
    text = audit(sqlite_store, model)
    assert isinstance(text, str)
    doc = _parse(text)
    tags = {tag for tag, _attrs in doc.tags}
    allowed = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
               "p", "time", "code", "b", "section", "table", "thead", "tbody", "tr", "th", "td",
               "span", "br", "ul", "ol", "li", "details", "summary", "figure", "figcaption",
               "footer", "div", "pre",
               # the inline SVG Graphviz drew
               "svg", "g", "polygon", "path", "text", "ellipse", "polyline"}
    assert tags <= allowed, tags - allowed
    assert "script" not in tags and "img" not in tags and "a" not in tags
    for _tag, attrs in doc.tags:
        for key, value in attrs:
            assert not key.startswith("on"), (key, value)
            assert key not in ("href", "src", "xlink:href", "action", "formaction"), (key, value)
    # …and they are all shown, as text (control characters as \xNN)
    words = doc.all_text
    for hostile in (EVIL, EVIL_IMG, EVIL_LINK):
        assert hostile in words
    assert "\x1b" not in text and "\\x1b[31m" in words
    for section in ("approvals", "data"):
        table = re.search(rf'<table id="{section}">.*?</table>', text, re.S)
        assert table is not None and EVIL_LINK in _parse(table.group(0)).all_text


def test_report_loads_nothing_from_elsewhere(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _record(sqlite_store, tmp_path / "w", evil=True)
    text = audit(sqlite_store, model)
    assert isinstance(text, str)
    urls = re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>]*", text)
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    # store values may mention URLs as text (escaped); no attribute ever points to one
    for tag, attrs in _parse(text).tags:
        for key, value in attrs:
            if value and re.search(r"(https?:)?//", value):
                assert key in ("xmlns", "xmlns:xlink") and value in namespaces, (tag, key, value)
    assert urls  # the hostile link is there, as text
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "<script" not in text and "<iframe" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


# --- digest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["html", "md"])
def test_check_detects_any_change_to_a_copy(
    sqlite_store: lineage.Store, tmp_path: Path, suffix: str
) -> None:
    model = _record(sqlite_store, tmp_path / "w")
    out = audit(sqlite_store, model, tmp_path / f"report.{suffix}")
    original = out.read_text()
    result = check(out)
    assert result and result.ok and result.recorded == result.computed
    assert result.recorded is not None and result.recorded in original
    copy = tmp_path / f"copy.{suffix}"
    shutil.copy(out, copy)
    assert check(copy).ok
    copy.write_bytes(original.replace("\n", "\r\n").encode())  # a Windows checkout
    assert check(copy).ok
    for tampered in (
        original.replace("lr = 0.05", "lr = 0.01"),
        original.replace("clf", "clg", 1),
        original.replace(result.recorded, "sha256:" + "0" * 64),
        original + " ",
    ):
        assert tampered != original
        copy.write_text(tampered)
        bad = check(copy)
        assert not bad and "MODIFIED" in bad.message
    copy.write_text(original.replace("lineage-audit-digest", "something-else"))
    assert not check(copy).ok and "no lineage audit digest" in check(copy).message
    with pytest.raises(lineage.RenderError, match="cannot read the report"):
        check(tmp_path / "missing.html")


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_report(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _record(sqlite_store, tmp_path / "w", evil=True)
    out = audit(sqlite_store, model, tmp_path / "report.md")
    text = out.read_text()
    assert text.startswith("# Audit report: ")
    for heading in ("## Target", "## Data (2 datasets)", "## Steps (2, roots first)",
                    "## Failed, cached and unfinished executions along the way (1)",
                    "## Evaluation", "## Selection", "## Config and params", "## Environment",
                    "## Change history", "## Accountability: who ran what",
                    "## Re-performance recipe"):
        assert heading in text
    assert "| id | name | version | type | uri | fingerprint | verified now | properties |" in text
    assert str(model.fingerprint) in text
    assert "```dot" not in text and "digraph" not in text  # a picture, never raw DOT
    outside_code = re.sub(r"```json\n.*?\n```", "", text, flags=re.S)
    assert "<script" not in outside_code and "<img" not in outside_code and "<a " not in outside_code
    assert "](https://" not in outside_code and "https://evil" not in outside_code
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in outside_code
    # table rows keep their shape: every | inside a value is escaped
    block: list[int] = []
    for line in [*outside_code.splitlines(), ""]:
        if line.startswith("| "):
            block.append(len(re.findall(r"(?<!\\)\|", line)))
        elif block:
            assert len(set(block)) == 1, block
            block = []
    assert check(out).ok


def test_store_audit_and_format_errors(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _record(sqlite_store, tmp_path / "w")
    out = sqlite_store.audit(model, tmp_path / "sub" / "a.html")
    assert Path(out).read_text().startswith("<!DOCTYPE html>")
    assert isinstance(audit(sqlite_store, model, format="md"), str)
    with pytest.raises(lineage.RenderError, match=r"\.html or a \.md"):
        audit(sqlite_store, model, tmp_path / "a.docx")
    with pytest.raises(lineage.NotFound):
        audit(sqlite_store, "no-such-model", tmp_path / "b.html")
    assert not (tmp_path / "b.html").exists()


def test_audit_of_a_read_only_store(sqlite_uri: str, tmp_path: Path) -> None:
    store = lineage.connect(sqlite_uri)
    model = _record(store, tmp_path / "w")
    store.close()
    ro = lineage.connect(sqlite_uri, read_only=True)
    out = audit(ro, model.id, tmp_path / "r.html")
    assert check(out).ok and "clf" in out.read_text()


def test_report_without_graphviz_still_has_the_tables(
    sqlite_store: lineage.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _record(sqlite_store, tmp_path / "w")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    text = audit(sqlite_store, model)
    assert isinstance(text, str)
    assert "<svg" not in text and "Diagram not available" in text
    assert "apt-get install graphviz" in text and '<table id="steps">' in text


# --- a real browser -------------------------------------------------------------------------


@pytest.mark.browser
def test_report_renders_in_headless_chromium(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing (Debian: apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    model = _record(sqlite_store, tmp_path / "w", evil=True)
    report = audit(sqlite_store, model, tmp_path / "report.html")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", report.resolve().as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    doc = _parse(dom)
    tags = [tag for tag, _attrs in doc.tags]
    ids = {value for _tag, attrs in doc.tags for key, value in attrs if key == "id"}
    # the diagram, inline, with its nodes
    assert "svg" in tags and tags.count("g") > 5 and "diagram" in ids
    # the tables, with rows
    tables = {value for tag, attrs in doc.tags if tag == "table"
              for key, value in attrs if key == "id"}
    assert {"target", "datasets", "steps", "along"} <= tables and "artifacts" in ids
    assert tags.count("tr") >= 8
    # the browser built no element from the hostile names and shows them as text; the one
    # link is to the full-size diagram written beside the report
    assert "script" not in tags and "img" not in tags
    links = [dict(attrs) for tag, attrs in doc.tags if tag == "a"]
    assert links == [{"href": "report.lineage.svg"}]
    assert (tmp_path / "report.lineage.svg").read_text().lstrip().startswith("<?xml")
    words = doc.all_text
    assert EVIL in words and EVIL_IMG in words
    assert "Audit report:" in words and "Provenance of" in words
