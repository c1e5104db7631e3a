"""The web UI in Debian's Chromium, headless, driven by Playwright (never a downloaded browser).

Set ``LINEAGE_UPDATE_DOCS=1`` to also write the README's screenshots to ``docs/``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from ui_fixtures import HOSTILE, build, digest, serving

import lineage

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing (Debian: apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("ui-browser")
    uri = str(folder / "store" / "metadata.sqlite")
    ids = build(uri, folder / "files")
    before = digest(uri)
    store = lineage.connect(uri, read_only=True)
    with serving(store) as url:
        yield {"url": url, "ids": ids, "uri": uri, "before": before, "folder": folder}
    store.close()


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    p.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    p.problems = problems
    yield p
    context.close()
    assert not [x for x in problems if "Refused" in x or "dialog" in x], problems


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=False)
    assert out.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("LINEAGE_UPDATE_DOCS"):
        shutil.copy(out, DOCS / name)


def _loaded(page: Any, selector: str) -> None:
    """Wait until an image has loaded (polling from Python: the page's CSP forbids eval)."""
    for _ in range(200):
        if page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0"):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{selector} did not load")


def _column(page: Any, key: str) -> list[str]:
    cells: list[str] = page.locator(f'#runs tbody td[data-key="{key}"]').all_inner_texts()
    return cells


def test_home_page_sort_and_filter_runs(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    page.goto(site["url"] + "/")
    assert page.title() == "Runs · lineage"
    names = page.locator("#runs tbody td.name").all_inner_texts()
    assert {"baseline", "tuned", HOSTILE} == set(names)
    page.goto(site["url"] + "/?experiment=iris")
    _shot(page, "ui-home.png", tmp_path)
    page.goto(site["url"] + "/")
    page.click('#runs thead a[data-sort="f1"]')  # lowest first
    page.wait_for_url("**sort=f1**")
    assert _column(page, "f1") == ["0.1", "0.82", "0.85"]
    page.click('#runs thead a[data-sort="f1"]')  # again: highest first
    page.wait_for_url("**sort=-f1**")
    assert _column(page, "f1") == ["0.85", "0.82", "0.1"]
    page.fill("#where", "f1>0.5; train.lr<0.04")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**where=**")
    assert page.locator("#runs tbody td.name").all_inner_texts() == ["tuned"]
    page.fill("#where", "nosuchkey>1")
    page.click("#filters button[type=submit]")
    assert "no run has the key 'nosuchkey'" in page.inner_text("#error-message")


def test_open_a_run_and_see_its_curves(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    page.goto(site["url"] + "/")
    page.click("#runs tbody td.name >> text=baseline")
    page.wait_for_url("**/runs/context:*")
    assert page.inner_text("#run-name") == "baseline"
    curves = page.locator("img#curves")
    curves.wait_for()
    _loaded(page, "#curves")
    assert page.evaluate("document.getElementById('curves').naturalWidth") > 200
    assert page.locator("#steps tbody tr").count() == 3
    assert "train.lr" in page.inner_text("#step-params")
    _shot(page, "ui-run.png", tmp_path)
    # compare the two iris runs from the home page's check boxes
    page.goto(site["url"] + "/?experiment=iris")
    for box in page.locator('#runs tbody input[type=checkbox]').all():
        box.check()
    page.click("#compare-form button[type=submit]")
    page.wait_for_url("**/compare?**")
    assert "train.lr" in page.inner_text("#comparison")
    _loaded(page, "#curves")


def test_model_diagram_node_leads_to_the_upstream_dataset(page: Any, site: dict[str, Any],
                                                          tmp_path: Path) -> None:
    ids = site["ids"]
    page.goto(f"{site['url']}/artifacts/{ids['tuned']['model']}")
    assert page.inner_text("#artifact-name") == "clf"
    page.wait_for_selector("#verify-table")
    assert "OK" in page.inner_text("#verify")
    _shot(page, "ui-model.png", tmp_path)
    page.click(f'#provenance-diagram svg a[*|href="/artifacts/{ids["raw"]}"]')
    page.wait_for_url(f"**/artifacts/{ids['raw']}")
    assert page.inner_text("#artifact-name") == "iris"
    # and from the dataset's impact back to a step page
    page.click('#impact-diagram svg a[*|href^="/executions/"] >> nth=0')
    page.wait_for_url("**/executions/*")
    assert page.locator("#execution-name").count() == 1


def test_diff_two_models(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["url"] + "/diff")
    page.fill("#diff-a", "clf@1")
    page.fill("#diff-b", "clf@2")
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("#diff-params")
    text = page.inner_text("#diff-params")
    assert "lr" in text and "0.05" in text and "0.02" in text
    assert page.locator("#diff-diagram svg a").count() > 0


def test_download_the_audit_report(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    model = site["ids"]["tuned"]["model"]
    page.goto(f"{site['url']}/artifacts/{model}")
    with page.expect_download() as info:
        page.click("#audit-download")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name.startswith("audit-clf-v2") and saved.suffix == ".html"
    import lineage.report

    assert lineage.report.check(saved).ok
    assert "Audit report: clf v2" in saved.read_text()


def test_hostile_names_execute_nothing(page: Any, site: dict[str, Any]) -> None:
    ids = site["ids"]
    for path in ("/", f"/runs/context:{ids['hostile_run']}", f"/executions/{ids['failed']}",
                 f"/compare?runs=context:{ids['hostile_run']},baseline",
                 "/search?q=" + HOSTILE):
        page.goto(site["url"] + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss === undefined"), path
        assert page.locator("img[src=x]").count() == 0, path
    page.goto(f"{site['url']}/runs/context:{ids['hostile_run']}")
    assert page.inner_text("#run-name") == HOSTILE  # shown as text, exactly


def test_a_running_run_page_follows_the_run(browser: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "live" / "metadata.sqlite")
    writer = lineage.connect(uri)
    go_on = threading.Event()
    started = threading.Event()

    @lineage.step(store=writer)
    def wait_here() -> None:
        started.set()
        assert go_on.wait(60)

    errors: list[BaseException] = []

    def record() -> None:
        try:
            with lineage.run("live", experiment="e", store=writer):
                lineage.log_metrics({"loss": 1.0}, step=0)
                lineage.log_metrics({"loss": 0.5}, step=1)
                wait_here()
                lineage.log_metrics({"loss": 0.25}, step=2)
                assert go_on.wait(60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=record)
    thread.start()
    assert started.wait(60)
    reader = lineage.connect(uri, read_only=True)
    try:
        with serving(reader) as url:
            context = browser.new_context()
            page = context.new_page()
            page.goto(url + "/runs/live")
            assert page.inner_text("#run-status") == "RUNNING"
            step_state = page.locator("#steps tbody tr [data-state]")
            assert step_state.inner_text() == "RUNNING"
            assert page.get_attribute("#curves", "data-points") == "2"
            go_on.set()  # the step ends, a point is added, then the run ends
            thread.join(60)
            expect(page.locator("#run-status")).to_have_text("COMPLETE", timeout=20000)
            expect(page.locator("#steps tbody tr [data-state]")).to_have_text("COMPLETE")
            expect(page.locator("#curves")).to_have_attribute("data-points", "3")
            context.close()
    finally:
        go_on.set()
        thread.join(60)
        reader.close()
    assert not errors


def test_zz_store_file_is_unchanged_after_browsing(site: dict[str, Any]) -> None:
    assert digest(site["uri"]) == site["before"]
