"""The web UI's JSON and pages, through Starlette's test client: each endpoint against the
library's own answer, bad ids and refs, escaping, headers, the token, read-only stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from ui_fixtures import HOSTILE, SCRIPT, build, digest, free_port

import lineage
from lineage.metrics import run_metrics
from lineage.ui import create_app
from lineage.ui._openapi import openapi

LINEAGE = [sys.executable, "-c", "import sys; from lineage.cli import main; sys.exit(main())"]


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("ui-api")
    uri = str(folder / "store" / "metadata.sqlite")
    return uri, build(uri, folder / "files")


@pytest.fixture(scope="module")
def client(recorded: tuple[str, dict[str, Any]]) -> TestClient:
    store = lineage.connect(recorded[0], read_only=True)
    return TestClient(create_app(store), raise_server_exceptions=False)


def test_api_answers_are_the_library_answers(recorded: tuple[str, dict[str, Any]],
                                             client: TestClient) -> None:
    uri, ids = recorded
    store = lineage.connect(uri, read_only=True)
    model, data = ids["tuned"]["model"], ids["tuned"]["data"]
    cases: list[tuple[str, Any]] = [
        ("/api/runs", store.search_runs(limit=50).to_dict()),
        ("/api/runs?where=f1>0.5&where=train.lr<0.04&sort=-f1",
         store.search_runs(where=["f1>0.5", "train.lr<0.04"], sort="-f1", limit=50).to_dict()),
        ("/api/runs?experiment=iris&sort=-f1&limit=1&offset=1",
         store.search_runs(experiment="iris", sort="-f1", limit=1, offset=1).to_dict()),
        ("/api/runs/baseline/metrics", run_metrics(store, "baseline").to_dict()),
        (f"/api/runs/context:{ids['hostile_run']}/metrics",
         run_metrics(store, ids["hostile_run"]).to_dict()),
        (f"/api/artifacts/{model}/provenance", store.provenance(model).to_dict()),
        (f"/api/artifacts/{data}/impact", store.impact(data).to_dict()),
        (f"/api/artifacts/{model}/verify", store.verify(model).to_dict()),
        ("/api/artifacts/clf@1/provenance", store.provenance("clf@1").to_dict()),
        ("/api/diff?a=clf@1&b=clf@2", store.diff("clf@1", "clf@2").to_dict()),
        (f"/api/diff?a={ids['baseline']['model']}&b=artifact:{model}",
         store.diff(ids["baseline"]["model"], model).to_dict()),
    ]
    for url, expected in cases:
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == _json(expected), url
    art = store.get(model)
    got = client.get(f"/api/artifacts/{model}").json()
    assert got == _json({**art.to_dict(), "base_type": art.base_type, "properties": art.properties,
                         "state": art.state, "create_time": art.create_time,
                         "previous_version": art.previous_version})
    ex = store.executions_by_id([ids["failed"]])[ids["failed"]]
    got = client.get(f"/api/executions/{ids['failed']}").json()
    assert got["error"] == ex.error and got["params"] == ex.params and got["state"] == "FAILED"
    status = client.get("/api/runs/baseline").json()
    assert status["name"] == "baseline" and status["status"] == "COMPLETE"
    assert [s["state"] for s in status["steps"]] == ["COMPLETE"] * 3
    assert status["points"] == {"acc": 6, "loss": 6}


def test_bad_ids_and_refs_answer_404_or_400_readably(client: TestClient) -> None:
    cases = [
        ("/api/artifacts/999", 404), ("/api/artifacts/artifact:x", 400),
        ("/api/artifacts/nope@3/provenance", 404), ("/api/artifacts/999/impact", 404),
        ("/api/runs/nope/metrics", 404), ("/api/runs/context:x/metrics", 400),
        ("/api/runs/context:999", 404), ("/api/runs?where=f1>>1", 400),
        ("/api/runs?where=acc_top>1", 400), ("/api/runs?limit=abc", 400),
        ("/api/runs?limit=0", 400), ("/api/runs?experiment=nope", 404),
        ("/api/diff?a=clf@1", 400), ("/api/diff?a=clf@1&b=nope", 404),
        ("/api/executions/abc", 400), ("/api/executions/999", 404),
        ("/artifacts/999", 404), ("/artifacts/artifact:x", 400), ("/artifacts/nope", 404),
        ("/runs/nope", 404), ("/runs/context:abc", 400), ("/executions/999", 404),
        ("/executions/x1", 400), ("/diff?a=clf@1&b=nope@9", 404), ("/compare?runs=", 400),
        ("/compare?runs=baseline,nope", 404), ("/runs/nope/curves.svg", 404),
        ("/runs/baseline/confusion.svg", 404), ("/?where=f1>>2", 400), ("/?page=0", 400),
        ("/nowhere", 404),
    ]
    for url, status in cases:
        answer = client.get(url)
        assert answer.status_code == status, (url, answer.status_code, answer.text[:300])
        assert "Traceback" not in answer.text and 'File "' not in answer.text
        if url.startswith("/api/"):
            body = answer.json()
            assert body["status"] == status and body["error"]
        else:
            assert answer.headers["content-type"].startswith("text/html")
            assert f"<h1>{status} " in answer.text and 'id="error-message"' in answer.text


def test_pages_show_what_is_recorded(recorded: tuple[str, dict[str, Any]],
                                     client: TestClient) -> None:
    _, ids = recorded
    home = client.get("/").text
    assert "baseline" in home and "tuned" in home and 'href="/?experiment=iris' in home
    run = client.get("/runs/baseline").text
    assert 'id="curves"' in run and "/runs/context:" in run and "train.lr" in run
    assert 'data-live=""' in run  # a finished run is not followed
    model = ids["tuned"]["model"]
    page = client.get(f"/artifacts/{model}").text
    # every node of the diagram links to its page
    assert f'xlink:href="/artifacts/{ids["raw"]}"' in page
    assert f'xlink:href="/artifacts/{ids["clean"]}"' in page
    assert 'xlink:href="/executions/' in page and "<?xml" not in page
    assert 'id="audit-download"' in page and "v2" in page
    failed = client.get(f"/executions/{ids['failed']}").text
    assert "ValueError" in failed and 'id="traceback"' in failed
    diff = client.get("/diff?a=clf@1&b=clf@2").text
    assert "train" in diff and "0.05" in diff and "0.02" in diff
    compare = client.get("/compare?runs=baseline,tuned").text
    assert "/compare/curves.svg?runs=context" in compare and "train.lr" in compare
    curves = client.get("/compare/curves.svg?runs=baseline,tuned")
    assert curves.headers["content-type"] == "image/svg+xml" and ">baseline<" in curves.text
    found = client.get("/search?q=clf@1", follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"].startswith("/artifacts/")
    found = client.get("/search?q=execution:3", follow_redirects=False)
    assert found.headers["location"] == "/executions/3"
    assert "baseline" in client.get("/search?q=base").text
    report = client.get(f"/artifacts/{model}/audit.html?download=1")
    assert report.headers["content-disposition"].startswith("attachment; filename=\"audit-clf-v2")
    assert "Audit report" in report.text


def test_every_recorded_string_is_escaped(recorded: tuple[str, dict[str, Any]],
                                          client: TestClient) -> None:
    _, ids = recorded
    pages = ["/", f"/runs/context:{ids['hostile_run']}", f"/executions/{ids['failed']}",
             f"/compare?runs=context:{ids['hostile_run']},baseline", "/search?q=%3Cimg"]
    for url in pages:
        text = client.get(url).text
        assert HOSTILE not in text and SCRIPT not in text, url
        assert "<script>window" not in text and "<img src=x" not in text, url
    run = client.get(f"/runs/context:{ids['hostile_run']}").text
    assert "&lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;" in run
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in run
    svg = client.get(f"/runs/context:{ids['hostile_run']}/curves.svg").text
    assert "<img" not in svg and "&lt;img src=x" in svg


def test_security_headers_and_no_cors(client: TestClient) -> None:
    for url in ("/", "/api/runs", "/static/app.js", "/artifacts/1", "/nowhere"):
        answer = client.get(url, headers={"Origin": "https://evil.example"})
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
        assert "script-src 'self'" in csp or url == "/static/app.js"
        assert "access-control-allow-origin" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    svg = client.get("/runs/baseline/curves.svg")
    assert "script-src" not in svg.headers["content-security-policy"]
    page = client.get("/").text
    assert "<script>" not in page and "<script src=\"/static/app.js\" defer></script>" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def test_openapi_describes_every_json_endpoint(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert schema == _json(openapi()) and schema["openapi"].startswith("3.")
    routes = {r.path.replace(":path}", "}") for r in client.app.routes  # type: ignore[attr-defined]
              if getattr(r, "path", "").startswith("/api/") and r.path != "/api/openapi.json"}
    assert routes == set(schema["paths"])
    for path, item in schema["paths"].items():
        ref = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in schema["components"]["schemas"], path


def test_token_protects_a_shared_server(recorded: tuple[str, dict[str, Any]]) -> None:
    store = lineage.connect(recorded[0], read_only=True)
    app = TestClient(create_app(store, token="s3cret-t0ken"), raise_server_exceptions=False)
    assert app.get("/").status_code == 401
    assert app.get("/api/runs").json()["status"] == 401
    assert app.get("/?token=wrong").status_code == 401
    assert app.get("/api/runs", headers={"Authorization": "Bearer s3cret-t0ken"}).status_code == 200
    first = app.get("/runs/baseline?token=s3cret-t0ken", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/runs/baseline"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    assert app.get("/runs/baseline").status_code == 200  # the cookie now


def test_loopback_server_refuses_other_host_names(recorded: tuple[str, dict[str, Any]]) -> None:
    store = lineage.connect(recorded[0], read_only=True)
    app = TestClient(create_app(store, allowed_hosts=["127.0.0.1", "localhost"]),
                     base_url="http://127.0.0.1:8765")
    assert app.get("/").status_code == 200
    assert app.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_browsing_leaves_the_sqlite_store_byte_identical(tmp_path: Path) -> None:
    uri = str(tmp_path / "store" / "metadata.sqlite")
    ids = build(uri, tmp_path / "files")
    before = digest(uri)
    store = lineage.connect(uri, read_only=True)
    app = TestClient(create_app(store), raise_server_exceptions=False)
    model = ids["tuned"]["model"]
    for url in ("/", "/?sort=-f1&where=f1>0.1", "/runs/baseline", "/runs/baseline/curves.svg",
                f"/artifacts/{model}", f"/artifacts/{model}/audit.html",
                f"/api/artifacts/{model}/verify", f"/executions/{ids['failed']}",
                "/diff?a=clf@1&b=clf@2", "/compare?runs=baseline,tuned", "/api/runs",
                "/artifacts/999"):
        assert app.get(url).status_code in (200, 404), url
    store.close()
    assert digest(uri) == before


@pytest.mark.postgres
def test_a_shared_postgresql_store_is_served(pg_uri: str, tmp_path: Path) -> None:
    ids = build(pg_uri, tmp_path / "files")
    store = lineage.connect(pg_uri, read_only=True)
    app = TestClient(create_app(store), raise_server_exceptions=False)
    assert app.get("/api/runs").json() == _json(store.search_runs(limit=50).to_dict())
    model = ids["tuned"]["model"]
    assert app.get(f"/api/artifacts/{model}/provenance").json() == \
        _json(store.provenance(model).to_dict())
    for url in ("/", "/runs/baseline", f"/artifacts/{model}", f"/executions/{ids['failed']}",
                "/diff?a=clf@1&b=clf@2", "/compare?runs=baseline,tuned"):
        answer = app.get(url)
        assert answer.status_code == 200, url
        assert "***" in answer.text or "pg-s3cret" not in answer.text


def test_lineage_ui_command_serves_until_interrupted(recorded: tuple[str, dict[str, Any]]) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*LINEAGE, "--store", recorded[0], "ui", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "read-only" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs") as answer:
                    assert json.load(answer)["runs"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_a_non_loopback_host_prints_a_warning(recorded: tuple[str, dict[str, Any]]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*LINEAGE, "--store", recorded[0], "ui", "--host", "0.0.0.0",
         "--port", str(port), "--token", "t0k"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "?token=t0k" in line
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "warning: serving" in err and "reachable from other machines" in err


def test_templates_and_static_files_ship_in_the_wheel() -> None:
    import fnmatch

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lineage"]
    shipped = [p for p in (root / "lineage" / "ui").rglob("*")
               if p.is_file() and p.parent.name in ("templates", "static")]
    assert {p.name for p in shipped} >= {"base.html", "run.html", "app.js", "style.css"}
    for path in shipped:
        rel = path.relative_to(root / "lineage").as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel


def test_a_port_in_use_is_one_clear_line(recorded: tuple[str, dict[str, Any]]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*LINEAGE, "--store", recorded[0], "ui", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"lineage ui: could not serve on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
