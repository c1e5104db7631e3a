"""Secrets are redacted before they are written: params of steps and runs, log_params,
config files, credentials in URLs and URIs, errors and tracebacks. None of them can then
reach any output made from the store, nor the database file itself."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import lineage
import lineage.secrets
from lineage.cli import main
from lineage.secrets import REDACTED

SECRETS = {
    "config password": "cfg-Pw-1234",
    "config api key": "sk-cfg-5678",
    "run token": "run-tok-9999",
    "password in a run param's URL": "dsn-pw-4321",
    "run log_params": "log-sec-2468",
    "step log_params": "step-log-1357",
    "step param": "sk-param-1111",
    "bearer header in a dict param": "hdr-tok-abcdef12",
    "failing step's token": "fail-tok-7777",
    "password in a URL in an error": "url-pw-8888",
    "password quoted in an error": "inline-pw-9999",
    "S3 secret in an artifact URI": "s3-secret-3333",
    "signature in a presigned URL": "sig-abc-5555",
}


@pytest.fixture(autouse=True)
def _default_secret_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(lineage.secrets.ENV, raising=False)
    yield
    lineage.secrets.configure()


def _record(store: lineage.Store, tmp_path: Path) -> lineage.Artifact:
    config = tmp_path / "params.yaml"
    config.write_text("db:\n  host: db.internal\n  password: cfg-Pw-1234\n"
                      "api_key: sk-cfg-5678\nlr: 0.1\n")
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")

    @lineage.step(store=store)
    def train(data: lineage.Dataset, api_key: str = "", headers: dict[str, str] | None = None,
              lr: float = 0.1) -> lineage.Model:
        lineage.log_params(auth_token="step-log-1357", epochs=3)
        out = tmp_path / "model.bin"
        out.write_bytes(b"model")
        return lineage.Model(out, name="clf")

    @lineage.step(store=store)
    def deploy(model: lineage.Model, token: str = "") -> None:
        raise RuntimeError(f"login with token {token} refused; see "
                           "https://bot:url-pw-8888@api.example/x; password=inline-pw-9999")

    with lineage.run("baseline", experiment="secrets", store=store, config=config,
                     params={"token": "run-tok-9999",
                             "dsn": "postgresql://app:dsn-pw-4321@db.internal/app"}):
        lineage.log_params(client_secret="log-sec-2468", seed=7)
        store.put(lineage.Dataset("s3://AKIAEXAMPLE:s3-secret-3333@bucket/raw.csv",
                                  name="remote", fingerprint="sha256:" + "0" * 64))
        store.put(lineage.Dataset(
            "https://bucket.example/raw.csv?X-Amz-Signature=sig-abc-5555&X-Amz-Expires=60",
            name="presigned", fingerprint="sha256:" + "1" * 64))
        model = train(lineage.Dataset(data, name="train"), api_key="sk-param-1111",
                      headers={"Authorization": "Bearer hdr-tok-abcdef12", "Accept": "json"})
        with pytest.raises(RuntimeError):
            deploy(model, token="fail-tok-7777")
    return model


def _leaks(text: str | bytes) -> list[str]:
    blob = text.encode() if isinstance(text, str) else text
    return [what for what, secret in SECRETS.items() if secret.encode() in blob]


def test_no_secret_reaches_the_sqlite_file_or_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store" / "meta.sqlite"
    store = lineage.connect(path)
    model = _record(store, tmp_path)

    [train] = store.executions(step="train")
    assert train.params["api_key"] == REDACTED and train.params["lr"] == 0.1
    assert train.params["auth_token"] == REDACTED and train.params["epochs"] == 3
    assert train.params["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    [deploy] = store.executions(step="deploy")
    assert deploy.state == "FAILED" and deploy.params["token"] == REDACTED
    assert REDACTED in (deploy.error or "") and "login with token" in (deploy.error or "")
    [run] = store.runs()
    assert run.params["db.password"] == REDACTED and run.params["db.host"] == "db.internal"
    assert run.params["api_key"] == REDACTED and run.params["token"] == REDACTED
    assert run.params["dsn"] == f"postgresql://app:{REDACTED}@db.internal/app"
    assert run.params["client_secret"] == REDACTED and run.params["seed"] == 7
    remote = store.get("remote")
    assert remote.uri == f"s3://AKIAEXAMPLE:{REDACTED}@bucket/raw.csv"

    outputs: list[tuple[str, str | bytes]] = []
    ref = str(model.id)
    for argv in (["ls"], ["ls", "executions"], ["ls", "runs"], ["ls", "--json"],
                 ["ls", "executions", "--json"], ["ls", "runs", "--json"], ["show", ref],
                 ["show", ref, "--json"], ["show", f"execution:{deploy.id}"],
                 ["show", f"execution:{deploy.id}", "--json"], ["provenance", ref],
                 ["provenance", ref, "--json"], ["compare", "baseline"],
                 ["compare", "baseline", "--json"], ["show", "remote"], ["show", "presigned"]):
        main(["--store", str(path), *argv])
        captured = capsys.readouterr()
        outputs.append((" ".join(argv), captured.out + captured.err))
    for fmt, name in (("bundle", "b.json"), ("openlineage", "ol.json"), ("prov", "prov.json")):
        target = tmp_path / name
        store.export(model, fmt, target)
        outputs.append((fmt, target.read_bytes()))
    for name in ("audit.html", "audit.md"):
        target = tmp_path / name
        store.audit(model, target)
        outputs.append((name, target.read_bytes()))
    for what, text in outputs:
        assert not _leaks(text), (what, _leaks(text))

    store.close()
    del store, model
    gc.collect()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    files = [p for p in path.parent.iterdir() if p.name.startswith("meta.sqlite")]
    for file in files:
        assert not _leaks(file.read_bytes()), (file.name, _leaks(file.read_bytes()))
    assert REDACTED.encode() in path.read_bytes()


def test_secrets_are_redacted_on_every_backend(store: lineage.Store, tmp_path: Path) -> None:
    _record(store, tmp_path)
    for execution in store.executions():
        assert not _leaks(repr(execution.to_dict()) + repr(execution.properties))
    for run in store.runs():
        assert not _leaks(repr(run.to_dict()) + repr(run.params))
    for artifact in store.artifacts():
        assert not _leaks(artifact.uri)


def test_the_list_of_secret_names_can_be_extended_and_narrowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lineage.connect(tmp_path / "meta.sqlite")
    monkeypatch.setenv(lineage.secrets.ENV, "salt,-token")
    with lineage.run("env", store=store, params={"salt": "s4lt", "token": "t0ken",
                                                 "password": "pw"}):
        pass
    monkeypatch.delenv(lineage.secrets.ENV)
    lineage.secrets.configure(add=["pin"], exempt=["api_key", "cfg.password_hint"])
    with lineage.run("configured", store=store,
                     params={"pin": 1234, "api_key": "visible", "cfg.password_hint": "blue",
                             "cfg.password": "hidden", "salt": "kept"}):
        pass
    env, configured = store.runs()
    assert env.params == {"salt": REDACTED, "token": "t0ken", "password": REDACTED}
    assert configured.params == {"pin": REDACTED, "api_key": "visible",
                                 "cfg.password_hint": "blue", "cfg.password": REDACTED,
                                 "salt": "kept"}


def test_names_that_only_look_alike_are_kept() -> None:
    kept = {"max_tokens": 512, "token_count": 3, "tokenizer": "bpe", "num_tokens": 9,
            "password_file": "/run/secrets/db", "secret_name": "db-creds", "keys": [1],
            "use_auth": True, "auth_method": "oauth", "key": "id", "lr": 0.1}
    assert lineage.secrets.redact_params(kept) == kept
    hidden = {"password": "a", "DB_PASSWORD": "b", "apiKey": "c", "hf_token": "d",
              "aws_secret_access_key": "e", "client_secret": "f", "auth": "g",
              "cfg.db.passwd": "h", "privateKey": "i", "Authorization": "j"}
    assert set(lineage.secrets.redact_params(hidden).values()) == {REDACTED}


def test_the_store_password_stays_redacted(tmp_path: Path) -> None:
    from lineage.errors import redact, translate

    error = translate(RuntimeError("failed for postgresql://me:St0re-pw@db/x (St0re-pw)"),
                      uri="postgresql://me:***@db/x", action="open the store",
                      secrets=["St0re-pw"])
    assert "St0re-pw" not in str(error)
    assert redact("mysql://u:St0re-pw@h/d") == "mysql://u:***@h/d"
