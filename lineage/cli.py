"""The ``lineage`` command: a shell over the library.

Each command opens the store (read-only when it only reads), makes one library call and
prints the result: a table or tree for people, exactly ``to_dict()`` with ``--json``.
Errors are one line on stderr and exit status 1 (2 for usage errors); ``--debug`` shows
the traceback.

Example:
    >>> from lineage.cli import main
    >>> main(["--store", ":memory:", "ls", "runs"])
    (no runs)
    0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lineage import _text
from lineage._fold import DEFAULT_FAN_OUT
from lineage.errors import LineageError, NotFound
from lineage.records import Execution
from lineage.store import Store, connect

__all__ = ["build_parser", "main"]


class _UsageError(Exception):
    """A command was called wrongly (exit status 2)."""


# --- output helpers ---------------------------------------------------------------------


def _out(text: str) -> None:
    print(_text.printable(text, newlines=True))  # no stored text drives the terminal


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# --- commands ---------------------------------------------------------------------------


_LS_OPTIONS = {  # which filters apply to what: any other is an error, never ignored
    "artifacts": {"type", "name"},
    "executions": {"type", "name", "step", "state", "run"},
    "runs": {"name", "state", "experiment", "where", "sort", "limit", "offset"},
}


def _cmd_ls(store: Store, args: argparse.Namespace) -> int:
    what = args.what
    given = {k for k in ("type", "name", "step", "state", "run", "experiment", "where", "sort",
                         "limit") if getattr(args, k) not in (None, [])}
    if args.offset:
        given.add("offset")
    wrong = sorted(given - _LS_OPTIONS[what])
    if wrong:
        raise _UsageError(
            f"`ls {what}` takes no {', '.join('--' + w for w in wrong)}; its filters are "
            f"{', '.join('--' + o for o in sorted(_LS_OPTIONS[what]))}")
    if what == "artifacts":
        arts = store.artifacts(type=args.type, name=args.name)
        if args.json:
            _json([{**a.to_dict(), "properties": a.properties} for a in arts])
        else:
            _out(_text.table(_text.artifact_rows(arts), _text.ART_HEADER) if arts else "(no artifacts)")
    elif what == "executions":
        execs = store.executions(step=args.step or args.type, state=args.state, run=args.run)
        if args.name:
            execs = [e for e in execs if args.name in (e.name, e.mlmd_name)]
        if args.json:
            _json([e.to_dict() for e in execs])
        elif execs:
            _out(_text.table([[e.ref, e.name, e.state, ", ".join(map(str, e.inputs)) or "-",
                               ", ".join(map(str, e.outputs)) or "-", _text.params(e.params) or "-"]
                              for e in execs],
                             ["ref", "step", "state", "inputs", "outputs", "params"]))
        else:
            _out("(no executions)")
    else:
        where = list(args.where or [])
        if args.name:
            where.append(f"name={args.name}")
        if args.state:  # a run's status
            where.append(f"status={args.state.upper()}")
        found = store.search_runs(experiment=args.experiment, where=where, sort=args.sort,
                                  limit=args.limit, offset=args.offset)
        if args.json:
            _json(found.to_dict())
        else:
            _out(str(found))
    return 0


def _show_run(store: Store, args: argparse.Namespace, ref: str) -> int:
    run = store.run(ref[len("run:"):] if ref.startswith("run:") else ref)
    d = {**run.to_dict(), "ref": run.ref, "properties": run.properties}
    if args.json:
        _json(d)
        return 0
    _out(f"run {run.name}  {run.ref}" + (f"  experiment {run.experiment}" if run.experiment
                                           else ""))
    for k, v in sorted(run.properties.items()):
        text = _text.time(v) if k.endswith("_time") else _text.full(v, indent=6)
        _out(f"  {k}: {text}")
    if run.params:
        _out("  params:")
        for k, v in sorted(run.params.items()):
            _out(f"    {k}: {_text.full(v, indent=6)}")
    steps = store.executions(run=run.id)
    if steps:
        _out("  steps:")
        for e in steps:
            _out(f"    {e.ref}  {e.name}  {e.state}")
    return 0


def _cmd_show(store: Store, args: argparse.Namespace) -> int:
    ref: str = args.ref
    if ref.startswith(("context:", "run:")):
        return _show_run(store, args, ref)
    if ref.startswith("execution:"):
        try:
            eid = int(ref.split(":", 1)[1])
        except ValueError:
            raise _UsageError(f"{ref!r}: expected execution:<id>") from None
        found = store.executions_by_id([eid])
        if not found:
            raise NotFound(f"no execution with id {eid} in {store.uri}", ref=ref)
        ex: Execution = found[eid]
        d = {**ex.to_dict(), "error": ex.error, "base_type": ex.base_type,
             "properties": ex.properties, "create_time": ex.create_time}
        if args.json:
            _json(d)
        else:
            _out(f"{ex.name}  {ex.ref}  {ex.state}")
            for key in ("inputs", "outputs", "error"):
                if d.get(key) not in (None, {}, []):
                    _out(f"  {key}: {_text.full(d[key])}")
            if ex.params:
                _out("  params:")
                for k, v in sorted(ex.params.items()):
                    _out(f"    {k}: {_text.full(v, indent=6)}")
            if ex.properties:
                _out("  properties:")
                for k, v in sorted(ex.properties.items()):
                    text = _text.time(v) if k.endswith("_time") else _text.full(v, indent=6)
                    _out(f"    {k}: {text}")
        return 0
    try:
        art = store.get(_ref(ref), type=getattr(args, "type", None))
    except NotFound:
        try:
            store.run(ref)
        except LineageError:
            raise  # neither: the artifact's message says what to do
        return _show_run(store, args, ref)  # a run's unique name
    d = {**art.to_dict(), "base_type": art.base_type, "properties": art.properties,
         "state": art.state, "create_time": art.create_time,
         "previous_version": art.previous_version, "kept": art.__dict__.get("kept")}
    if args.json:
        _json(d)
    else:
        _out(f"{_text.label(art)}  artifact:{art.id}")
        for key in ("uri", "fingerprint", "base_type", "state", "previous_version"):
            if d.get(key) not in (None, ""):
                _out(f"  {key}: {d[key]}")
        if len(art.locations) > 1 or any(loc["host"] for loc in art.locations):
            _out("  seen at:")
            for loc in art.locations:
                _out(f"    {loc['uri']}" + (f"  (on {loc['host']})" if loc["host"] else ""))
        if d["kept"]:
            _out(f"  kept: {d['kept'].get('objects')}/{d['kept'].get('key')} "
                 f"({d['kept'].get('kind')}, {d['kept'].get('size')} bytes)")
        for k, v in sorted(art.properties.items()):
            _out(f"  {k}: {_text.full(v)}")
    return 0


def _ref(text: str) -> str:
    """A REF as given: the library reads it exactly as the Python API reads the string."""
    return text


def _aref(store: Store, args: argparse.Namespace, text: str) -> str:
    """An artifact REF, narrowed to ``--type`` when given (a name several types share)."""
    kind = getattr(args, "type", None)
    if not kind:
        return text
    return f"artifact:{store.get(text, type=kind).id}"


def _cmd_provenance(store: Store, args: argparse.Namespace) -> int:
    p = store.provenance(_aref(store, args, args.ref))
    if args.json:
        _json(p.to_dict())
    else:
        _out(str(p))
    return 0


def _cmd_impact(store: Store, args: argparse.Namespace) -> int:
    imp = store.impact(_aref(store, args, args.ref))
    if args.json:
        _json(imp.to_dict())
    else:
        _out(str(imp))
    return 0


def _cmd_diff(store: Store, args: argparse.Namespace) -> int:
    dif = store.diff(_aref(store, args, args.a), _aref(store, args, args.b))
    if args.json:
        _json(dif.to_dict())
    else:
        _out(str(dif))
    return 0


def _cmd_verify(store: Store, args: argparse.Namespace) -> int:
    prefixes: dict[str, str] = {}
    for item in args.map or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise _UsageError(f"--map {item!r}: expected RECORDED_PREFIX=LOCAL_PREFIX, e.g. "
                              "--map /home/alice=/mnt/alice")
        prefixes[old] = new
    v = store.verify(_aref(store, args, args.ref) if args.ref else None, map=prefixes,
                     restore=args.restore)
    if args.json:
        _json(v.to_dict())
    else:
        _out(str(v))
        if v.approvals:
            _out(_text.table([[d["ref"], f"artifact:{d['target']}", str(d["by"]), str(d["time"]),
                               d["status"], d["detail"]] for d in (a.to_dict() for a in v.approvals)],
                             ["approval", "of", "by", "time", "status", "detail"]))
    return 0 if v.ok else 1


def _cmd_compare(store: Store, args: argparse.Namespace) -> int:
    searching = args.experiment is not None or args.best or args.sort or args.where
    if args.runs and searching:
        raise _UsageError("give RUNs, or --experiment/--best/--sort/--where, not both")
    if args.best and args.sort:
        raise _UsageError("--best KEY is --sort -KEY: give one of them")
    if not args.runs and not searching:
        raise _UsageError("give RUNs to compare, or --experiment E, or --best KEY")
    if args.runs:
        if args.limit is not None:
            raise _UsageError("--limit goes with --experiment or --best")
        refs: list[str | int] = [_ref(r) for r in args.runs]
    else:
        sort = f"-{args.best}" if args.best else args.sort
        found = store.search_runs(experiment=args.experiment, where=args.where or [], sort=sort,
                                  limit=args.limit, step_params=False)
        refs = [r.ref for r in found]
    c = store.compare(refs)
    if args.json:
        _json(c.to_dict())
    else:
        _out(str(c))
    return 0


def _cmd_plot(store: Store, args: argparse.Namespace) -> int:
    if args.confusion_matrix or args.step is not None:
        from lineage.metrics import confusion_chart

        if len(args.runs) != 1 or args.metric:
            raise _UsageError("--confusion-matrix draws one run's matrix: one RUN, no --metric")
        written: Any = confusion_chart(store, args.runs[0], args.step).save(args.output)
    else:
        written = store.plot(list(args.runs), args.metric or None, args.output,
                             title=args.title)
    if args.json:
        _json({"written": str(written)})
    else:
        _out(f"wrote {written}")
    return 0


def _cmd_ui(store: Store, args: argparse.Namespace) -> int:
    from lineage.ui import serve

    serve(host=args.host, port=args.port, open_browser=args.open, token=args.token, store=store)
    return 0


def _cmd_graph(store: Store, args: argparse.Namespace) -> int:
    from lineage.render import render

    if args.ref is not None and args.run is not None:
        raise _UsageError("give a REF or --run, not both")
    if args.ref is None and (args.upstream or args.downstream):
        raise _UsageError("--upstream/--downstream need a REF")
    obj: Any
    if args.ref is None:
        obj = store.graph(run=_ref(args.run) if args.run is not None else None)
    elif args.downstream:
        obj = store.impact(_aref(store, args, args.ref))
    else:
        obj = store.provenance(_aref(store, args, args.ref))
    written = render(obj, args.output, fold=not args.no_fold, fan_out=args.fan_out)
    if args.json:
        _json({"written": str(written)})
    else:
        _out(f"wrote {written}")
    return 0


def _cmd_audit(store: Store | None, args: argparse.Namespace) -> int:
    from lineage import report

    if args.check is not None:
        if args.ref is not None or args.output is not None or args.sign is not None:
            raise _UsageError("audit --check FILE takes no REF, -o or --sign")
        result = report.check(args.check, store, key=args.key)
        if args.json:
            _json(result.to_dict())
        else:
            _out(result.message)
            for line in result.mismatches[5:]:
                _out(f"  {line}")
        return 0 if result.ok else 1
    if args.ref is None:
        raise _UsageError("audit needs REF (and -o FILE to write the report), or --check FILE")
    if args.key is not None:
        raise _UsageError("--key PUB.pem is for --check; sign a report with --sign KEY.pem")
    assert store is not None
    if args.output is None:
        if args.sign is not None:
            raise _UsageError("--sign needs -o FILE (the signature goes beside the report)")
        from lineage.evidence import evidence

        ev = evidence(store, _ref(args.ref))
        failures = [f"{c.artifact.type_name} {c.artifact.name} v{c.artifact.version} "
                    f"(artifact:{c.artifact.id}): {c.status}" for c in ev.checks.values()
                    if c.status in ("changed", "missing", "unreadable")]
        failures += [f"approval artifact:{a.approval.id}: {a.status}" for a in ev.approvals
                     if not a.ok]
        if args.json:
            _json(ev.to_dict())
        else:
            _out(str(report.audit(store, _ref(args.ref), format="md", fold=not args.no_fold)))
        return 0 if not failures or args.allow_changed else 1
    made = report.write_report(store, _ref(args.ref), args.output, key=args.sign,
                               record=False, fold=not args.no_fold)
    assert made.path is not None
    recorded_as = None
    if not args.no_record:
        from lineage import audits

        writer = connect(args.store)
        try:
            target = writer.get(_ref(args.ref))
            sig = audits.read_signature(made.path) if args.sign is not None else None
            entry = audits.record_report(writer, target, made.path, digest=made.digest,
                                         fmt="md" if str(args.output).endswith(".md") else "html",
                                         signature=sig)
            recorded_as = f"artifact:{entry.id}"
        finally:
            writer.close()
    summary = {**made.to_dict(), "recorded_as": recorded_as}
    if args.json:
        _json(summary)
    else:
        _out(f"wrote {made.path} (digest {made.digest})")
        if recorded_as:
            _out(f"recorded in the store as {recorded_as}: check a copy with "
                 f"`lineage --store URI audit --check {made.path}`")
        if made.signature:
            _out(f"signed: {made.signature}")
        for failure in made.failures:
            print(f"lineage audit: re-verification failed: {failure}", file=sys.stderr)
    if made.failures and not args.allow_changed:
        return 1
    return 0


def _cmd_approve(store: Store, args: argparse.Namespace) -> int:
    from lineage.approvals import approve

    approval = approve(store, _ref(args.ref), by=args.by, note=args.note or "", key=args.key)
    d = {"approval": f"artifact:{approval.id}", **{k: approval.properties.get(k) for k in (
        "by", "note", "time", "target", "target_fingerprint", "key_id")}}
    if args.json:
        _json(d)
    else:
        signed = f", signed with key {str(d['key_id'])[:16]}…" if d.get("key_id") else ", not signed"
        _out(f"approved artifact:{d['target']} ({d['target_fingerprint']}) by {d['by']} at "
             f"{d['time']}{signed}: recorded as {d['approval']}")
    return 0


def _cmd_attest(store: Store | None, args: argparse.Namespace) -> int:
    from lineage import attest

    if args.verify is not None:
        if args.ref is not None or args.output is not None:
            raise _UsageError("attest --verify FILE takes no REF and no -o")
        if args.key is None:
            raise _UsageError("attest --verify FILE needs --key PUB.pem (the signer's public key)")
        check = attest.verify_attestation(args.verify, args.key, artifact=args.artifact)
        if args.json:
            _json(check.to_dict())
        else:
            _out(check.message)
        return 0 if check.ok else 1
    if args.ref is None or args.output is None:
        raise _UsageError("attest needs REF and -o FILE (or --verify FILE --key PUB.pem)")
    assert store is not None
    written = attest.write_attestation(store, _ref(args.ref), args.output, key=args.key)
    if args.json:
        _json({"written": str(written), "signed": args.key is not None})
    else:
        kind = "DSSE envelope (signed)" if args.key is not None else "in-toto statement (unsigned)"
        _out(f"wrote {written}: {kind}")
    return 0


def _cmd_reproduce(store: Store, args: argparse.Namespace) -> int:
    from lineage.reproduce import reproduce

    result = reproduce(store, _ref(args.ref), args.output)
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0 if result.ok else 1


def _cmd_export(store: Store, args: argparse.Namespace) -> int:
    ref = args.ref if args.format == "tensorboard" else _ref(args.ref)  # a run ref
    exported = store.export(ref, args.format, path=args.output)
    if args.json:
        _json({"written": str(args.output), "format": exported.format})
    else:
        _out(f"wrote {args.output} ({exported.format})")
    return 0


def _cmd_import(store: Store, args: argparse.Namespace) -> int:
    result = store.import_bundle(args.file)
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0


def _cmd_doctor(store: Store, args: argparse.Namespace) -> int:
    report = store.doctor(fix=args.fix, stale_after=args.stale_after)
    if args.json:
        _json(report.to_dict())
    else:
        _out(str(report))
    return 0 if report.ok else 1


def _cmd_fingerprint(store: None, args: argparse.Namespace) -> int:
    from lineage.fingerprint import fingerprint, manifest, manifest_line

    path = Path(args.path)
    if not args.manifest:
        digest = fingerprint(path, algo=args.algo)
        if args.json:
            _json({"path": str(path), "fingerprint": digest})
        else:
            _out(digest)
        return 0
    if path.is_dir():
        text = manifest(path, algo=args.algo)
    else:  # a file: the one line sha256sum prints for it
        digest = fingerprint(path, algo=args.algo)
        text = manifest_line(digest.split(":", 1)[1], str(args.path))
    if args.json:
        _json({"path": str(path), "algo": args.algo, "lines": text.splitlines()})
    elif sys.stdout.isatty():
        sys.stdout.write(_text.printable(text, newlines=True))
    else:  # exactly the bytes that are hashed: `lineage fingerprint D --manifest | sha256sum`
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    return 0


def _kind(args: argparse.Namespace) -> str | None:
    return "run" if args.run else "artifact" if args.artifact else None


def _cmd_tag(store: Store, args: argparse.Namespace) -> int:
    from lineage import tags

    if args.history:
        if args.pairs or args.remove or args.alias:
            raise _UsageError("tag --history NAME@ALIAS takes no KEY=VALUE, --remove or --alias")
        moves = tags.alias_history(store, args.ref)
        if args.json:
            _json([m.to_dict() for m in moves])
        else:
            _out(_text.table([[_text.time(m.time), f"artifact:{m.artifact_id}",
                               str(m.version or "-"),
                               f"artifact:{m.from_id}" if m.from_id else "-", m.by, m.host]
                              for m in moves],
                             ["moved", "to", "version", "from", "by", "host"]))
        return 0
    pairs: dict[str, str] = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"{pair!r}: tags are KEY=VALUE")
        pairs[key] = value
    if pairs or args.remove or args.alias:
        store._check_writable("tag")
        result = tags.tag(store, _ref(args.ref), pairs, remove=args.remove or (),
                          alias=args.alias, by=args.by, kind=_kind(args))
    else:
        result = tags.annotations_of(store, _ref(args.ref), kind=_kind(args))
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0


def _cmd_note(store: Store, args: argparse.Namespace) -> int:
    from lineage import tags

    result = tags.note(store, _ref(args.ref), args.text, kind=_kind(args))
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0


def _cmd_checkout(store: Store, args: argparse.Namespace) -> int:
    result = store.checkout(_ref(args.ref), args.output)
    if args.json:
        _json(result.to_dict())
    elif result.path is None:  # in-memory content, no -o: its bytes on stdout
        from lineage.checkout import checkout_bytes

        sys.stdout.flush()
        sys.stdout.buffer.write(checkout_bytes(result))
        sys.stdout.buffer.flush()
    else:
        _out(str(result))
    return 0


def _cmd_push(store: Store, args: argparse.Namespace) -> int:
    refs = [_ref(r) for r in args.refs] or None
    result = store.push(args.remote, refs) if args.command == "push" else store.pull(args.remote, refs)
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0 if result.ok else 1


def _cmd_gc(store: Store, args: argparse.Namespace) -> int:
    result = store.gc(dry_run=not args.yes, min_age=args.min_age)
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0


def _cmd_du(store: Store, args: argparse.Namespace) -> int:
    result = store.du()
    if args.json:
        _json(result.to_dict())
    else:
        _out(str(result))
    return 0


# --- parser -----------------------------------------------------------------------------


_Command = Callable[[Any, argparse.Namespace], int]


def _cmd_run(store: Store, args: argparse.Namespace) -> int:
    from lineage import runs

    if args.action == "start":
        params: dict[str, Any] = {}
        for item in args.param or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise _UsageError(f"--param {item!r}: expected KEY=VALUE")
            params[key] = _param_value(value)
        found = runs.start_run(store, args.target, args.experiment, params, args.config or None)
    else:
        if args.experiment or args.param or args.config:
            raise _UsageError("run end takes a run ref and --status only")
        found = runs.end_run(store, args.target, args.status)
    if args.json:
        _json({**found.to_dict(), "ref": found.ref, "status": found.properties.get("status")})
    else:
        _out(found.ref)
    return 0


def _cmd_which(store: Store, args: argparse.Namespace) -> int:
    found = store.which(args.path)
    if args.json:
        _json([{**a.to_dict(), "locations": a.locations} for a in found])
        return 0 if found else 1
    if not found:
        _out(f"no record holds the content of {args.path}")
        return 1
    rows = [[f"artifact:{a.id}", a.type_name, a.name or "-", str(a.version or "-"),
             _text.short_fp(a.fingerprint),
             "; ".join(loc["uri"] + (f" (on {loc['host']})" if loc["host"] else "")
                       for loc in a.locations) or "(in memory)"] for a in found]
    _out(_text.table(rows, ["ref", "type", "name", "version", "fingerprint", "seen at"]))
    return 0


def _param_value(text: str) -> Any:
    """A --param value: a number or true/false when it reads as one, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _version() -> str:
    from lineage import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lineage`` command."""
    parser = argparse.ArgumentParser(
        prog="lineage",
        description="Which data, code and parameters produced this model? Query an MLMD store.",
        epilog="REF is an artifact: 'name' (the content most recently recorded under it), "
               "'name@3', 'name@ALIAS', 'artifact:12' or 'file:PATH' (by content).",
    )
    parser.add_argument("--store", metavar="URI",
                        help="store URI or path (default: $LINEAGE_URI, else "
                             "./.lineage/metadata.sqlite)")
    parser.add_argument("--objects", metavar="URL",
                        help="where content is kept (default: $LINEAGE_OBJECTS, else objects/ "
                             "beside a SQLite store)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"lineage {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: _Command, help: str, *, writes: bool = False,
            store_mode: Callable[[argparse.Namespace], str | None] | None = None,
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print the result as JSON (to_dict())")
        # the global options work after the command too (`lineage ls --store X`)
        p.add_argument("--store", metavar="URI", default=argparse.SUPPRESS,
                       help="store URI or path (as before the command)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        mode = store_mode or (lambda _args: "write" if writes else "read")
        p.set_defaults(func=func, writes=writes, store_mode=mode)
        return p

    p = add("ls", _cmd_ls, "list artifacts, executions or runs")
    p.add_argument("what", nargs="?", default="artifacts", choices=["artifacts", "executions", "runs"])
    p.add_argument("--type", help="artifact type (artifacts) or step (executions)")
    p.add_argument("--name", help="logical name (artifacts, runs) or step name (executions)")
    p.add_argument("--step", help="step name (executions)")
    p.add_argument("--state", help="RUNNING, COMPLETE, FAILED, CACHED or CANCELED (executions); "
                                   "a run's status (runs)")
    p.add_argument("--run", help="run name or context id (executions)")
    p.add_argument("--experiment", help="experiment name (runs)")
    p.add_argument("--where", action="append", metavar="EXPR",
                   help="runs: a filter KEY OP VALUE, OP one of = != < <= > >= (repeatable: "
                        "--where 'f1>0.9' --where 'train.lr=0.05')")
    p.add_argument("--sort", metavar="[-]KEY", help="runs: sort by KEY, lowest first; -KEY "
                                                    "highest first (--sort -f1: best first)")
    p.add_argument("--limit", type=int, metavar="N", help="runs: at most N")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="runs: skip the first N")

    p = add("run", _cmd_run,
            "start a run that several processes record into (prints its ref: export it as "
            "LINEAGE_RUN), or end it (its status from what was recorded, or --status)",
            writes=True)
    p.add_argument("action", choices=["start", "end"])
    p.add_argument("target", metavar="NAME|REF",
                   help="start: the run's name; end: the ref start printed (context:N)")
    p.add_argument("--experiment", help="start: the experiment (default: 'default')")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="start: a run param "
                                                                          "(repeatable)")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="start: a config file recorded with the run (repeatable)")
    p.add_argument("--status", choices=["COMPLETE", "FAILED", "CANCELED"],
                   help="end: the status (default: FAILED if a step failed, else COMPLETE)")

    p = add("which", _cmd_which,
            "the records whose content equals this file's or folder's bytes, and where they "
            "were seen (any REF also takes file:PATH); exit 1 if none")
    p.add_argument("path", metavar="PATH")

    p = add("show", _cmd_show, "show one artifact (REF), execution (execution:ID) or run "
                               "(its name, run:NAME or context:ID)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--type", metavar="TYPE",
                   help="the artifact type of REF, when its name is used by several types")

    p = add("provenance", _cmd_provenance, "which data, steps and params produced REF")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--type", metavar="TYPE",
                   help="the artifact type of REF, when its name is used by several types")

    p = add("impact", _cmd_impact, "everything downstream of REF, grouped by type")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--type", metavar="TYPE",
                   help="the artifact type of REF, when its name is used by several types")

    p = add("diff", _cmd_diff, "how the lineages of two artifacts differ")
    p.add_argument("a", metavar="REF")
    p.add_argument("b", metavar="REF")
    p.add_argument("--type", metavar="TYPE",
                   help="the artifact type of REF, when its name is used by several types")

    p = add("verify", _cmd_verify,
            "re-fingerprint recorded content (all, or the lineage of REF) at every location it "
            "was seen at; exit 1 if any changed or is missing, or if nothing could be checked")
    p.add_argument("ref", metavar="REF", nargs="?")
    p.add_argument("--map", action="append", metavar="RECORDED=LOCAL",
                   help="read paths recorded under RECORDED (e.g. another host's /home/alice) "
                        "under LOCAL instead; repeatable")
    p.add_argument("--type", metavar="TYPE",
                   help="the artifact type of REF, when its name is used by several types")

    p.add_argument("--restore", action="store_true",
                   help="put back the kept copy of every changed or missing file and folder")

    p = add("checkout", _cmd_checkout,
            "write the exact content of a version (verified against its fingerprint): to its "
            "recorded path, to -o PATH, or (in-memory content) to stdout")
    p.add_argument("ref", metavar="REF")
    p.add_argument("-o", "--output", metavar="PATH", help="where to write it")

    for name, what in (("push", "to"), ("pull", "from")):
        p = add(name, _cmd_push,
                f"copy the kept objects of REF... and their provenance (default: every "
                f"artifact) {what} a remote object store (records travel in bundles: "
                "`lineage export --format bundle`, `lineage import`)")
        p.add_argument("refs", metavar="REF", nargs="*")
        p.add_argument("--remote", metavar="URL",
                       help="the remote object store (s3://bucket/prefix, a folder, any fsspec "
                            "URL); default $LINEAGE_REMOTE")

    p = add("gc", _cmd_gc,
            "remove kept objects no recorded artifact references (a dry run unless --yes); "
            "not for object stores other stores share")
    p.add_argument("--yes", action="store_true", help="really delete them")
    p.add_argument("--min-age", type=float, default=600.0, metavar="SECONDS",
                   help="leave unreferenced objects younger than this (default 600)")

    add("du", _cmd_du, "what the kept objects take, per name and version")

    p = add("compare", _cmd_compare,
            "runs side by side: params and final metrics (RUNs, or the runs of --experiment, "
            "or the --best N by a metric)")
    p.add_argument("runs", metavar="RUN", nargs="*")
    p.add_argument("--experiment", help="compare the runs of this experiment")
    p.add_argument("--best", metavar="KEY", help="the runs with the highest KEY first "
                                                 "(with --limit N: the best N); --sort -KEY")
    p.add_argument("--sort", metavar="[-]KEY", help="order by KEY (lowest first) or -KEY")
    p.add_argument("--where", action="append", metavar="EXPR", help="only runs matching EXPR "
                                                                   "(as ls runs --where)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N runs")

    p = add("plot", _cmd_plot,
            "draw metric curves of runs (or steps, execution:ID) overlaid: one line per run "
            "and metric (svg, png, pdf)")
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="only this metric (repeatable; default: every metric with a series)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--title", help="a caption over the curves")
    p.add_argument("--confusion-matrix", action="store_true",
                   help="draw the run's latest confusion matrix as a heatmap instead")
    p.add_argument("--step", type=int, metavar="N",
                   help="the confusion matrix logged at step N (implies --confusion-matrix)")

    p = add("ui", _cmd_ui,
            "serve the store read-only in a web browser (runs, curves, lineage diagrams, "
            "audit reports) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--token", help="require this token (give the printed URL to your team)")

    p = add("graph", _cmd_graph, "draw the store, a run, or the lineage of REF (svg, png, pdf, dot)")
    p.add_argument("ref", metavar="REF", nargs="?")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--upstream", action="store_true", help="the provenance of REF (default)")
    way.add_argument("--downstream", action="store_true", help="the impact of REF")
    p.add_argument("--run", metavar="NAME", help="only this run")
    p.add_argument("--no-fold", action="store_true",
                   help="draw every execution (by default repeats of a call and cache hits "
                        "are one box)")
    p.add_argument("--fan-out", type=int, default=DEFAULT_FAN_OUT, metavar="N",
                   help="draw a step called N times or more in one run as one box "
                        f"(default {DEFAULT_FAN_OUT}; 0: never)")

    p = add("audit", _cmd_audit,
            "write an audit report of REF (.html or .md; recorded in the store), or --check "
            "one against the store; exit 1 when the re-verification it performs fails",
            store_mode=_audit_store_mode)
    p.add_argument("ref", metavar="REF", nargs="?")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="report file (.html or .md); without it the report's evidence is "
                        "printed (Markdown, or JSON with --json)")
    p.add_argument("--check", metavar="FILE",
                   help="check a report: against the store given with --store (or $LINEAGE_URI): "
                        "its digest was recorded and its facts still match; without a store, "
                        "self-consistency only")
    p.add_argument("--sign", metavar="KEY.pem",
                   help="sign the report's digest with this Ed25519 private key (FILE.sig)")
    p.add_argument("--key", metavar="PUB.pem",
                   help="with --check: the report must be signed with this public key")
    p.add_argument("--allow-changed", action="store_true",
                   help="exit 0 even when re-verification finds changed, missing or "
                        "unreadable content or a bad approval")
    p.add_argument("--no-record", action="store_true",
                   help="do not record the report in the store (open it read-only)")
    p.add_argument("--no-fold", action="store_true",
                   help="draw every execution in the report's diagram")

    p = add("approve", _cmd_approve,
            "record a dated approval of REF by NAME, optionally signed (--key KEY.pem)",
            writes=True)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--by", required=True, metavar="NAME", help="who approves")
    p.add_argument("--note", metavar="TEXT", help="what was approved, and why")
    p.add_argument("--key", metavar="KEY.pem", help="Ed25519 private key (PEM PKCS#8) to sign with")

    p = add("attest", _cmd_attest,
            "write an in-toto statement (SLSA provenance v1) of REF, a DSSE envelope with "
            "--key; or --verify one", store_mode=lambda a: None if a.verify else "read")
    p.add_argument("ref", metavar="REF", nargs="?")
    p.add_argument("-o", "--output", metavar="FILE", help="attestation file (.intoto.json)")
    p.add_argument("--key", metavar="KEY.pem",
                   help="Ed25519 private key to sign with; with --verify the public key")
    p.add_argument("--verify", metavar="FILE",
                   help="verify a signed attestation (exit 0 only if the signature is the "
                        "key's and every subject matches the file on disk)")
    p.add_argument("--artifact", metavar="PATH",
                   help="with --verify: the file or folder to compare the subjects with "
                        "(default: the paths the subjects name)")

    p = add("reproduce", _cmd_reproduce,
            "re-run the recorded steps behind REF in a scratch folder and compare digests "
            "(exit 0 only if the same digest comes out)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("-o", "--output", metavar="FOLDER", help="scratch folder (default: a new "
                                                              "temporary folder, kept)")

    p = add("export", _cmd_export,
            "export the provenance of REF: a bundle (.pb, or .json), OpenLineage events "
            "(.json list, .jsonl lines), W3C PROV-JSON, a Model Card (Markdown); or a run's "
            "metrics as TensorBoard event files (--format tensorboard)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--format", required=True,
                   choices=["openlineage", "prov", "bundle", "model-card", "tensorboard"],
                   help="openlineage, prov, bundle or model-card (Markdown); tensorboard: REF "
                        "is a run and -o a log dir of event files (its series and confusion "
                        "matrices)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")

    p = add("tag", _cmd_tag,
            "set, remove or show the tags of an artifact or run; --alias names a version "
            "(clf@production); --history NAME@ALIAS lists the moves of an alias",
            writes=True)
    p.add_argument("ref", metavar="REF", help="artifact or run (--run/--artifact if both)")
    p.add_argument("pairs", metavar="KEY=VALUE", nargs="*", help="tags to set")
    p.add_argument("--remove", metavar="KEY", action="append", help="a tag to delete")
    p.add_argument("--alias", metavar="NAME", help="make NAME@ALIAS name this version")
    p.add_argument("--by", metavar="WHO", help="who moves the alias (default: your login)")
    p.add_argument("--history", action="store_true", help="REF is NAME@ALIAS: list its moves")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--run", action="store_true", help="REF is a run")
    side.add_argument("--artifact", action="store_true", help="REF is an artifact")

    p = add("note", _cmd_note, "set the free-text note of an artifact or run ('' clears it)",
            writes=True)
    p.add_argument("ref", metavar="REF")
    p.add_argument("text", metavar="TEXT")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--run", action="store_true", help="REF is a run")
    side.add_argument("--artifact", action="store_true", help="REF is an artifact")

    p = add("import", _cmd_import,
            "import a bundle written by `lineage export --format bundle` (idempotent)",
            writes=True)
    p.add_argument("file", metavar="FILE")

    p = add("doctor", _cmd_doctor,
            "list RUNNING steps and runs whose process is gone (exit 1 if any); --fix marks "
            "them FAILED ('abandoned: ...') and closes their runs",
            store_mode=lambda a: "write" if a.fix else "read")
    p.add_argument("--fix", action="store_true",
                   help="mark what is abandoned FAILED (opens the store for writing)")
    p.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                   help="heartbeat age after which a step from another host is abandoned "
                        "(default 600)")

    p = add("fingerprint", _cmd_fingerprint,
            "print the fingerprint of a file or folder (no store needed); --manifest prints "
            "the lines that are hashed (what sha256sum prints for each file)",
            store_mode=lambda a: None)
    p.add_argument("path", metavar="PATH")
    p.add_argument("--manifest", action="store_true",
                   help="print the manifest (one sha256sum line per file) instead")
    p.add_argument("--algo", default="sha256", choices=["sha256", "blake3"],
                   help="digest algorithm (default sha256)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lineage`` command; return the exit status.

    Args:
        argv: the arguments (without the program name); ``None`` reads ``sys.argv``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(_joined_values(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # argparse printed usage or help
        return int(exc.code or 0)
    store: Store | None = None
    try:
        mode = args.store_mode(args)
        if mode is not None:
            store = connect(args.store, read_only=mode != "write",
                            objects=args.objects)
        status: int = args.func(store, args)
        return status
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"lineage {args.command}: error: {_text.printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - `lineage ls | head`
        return 1
    except (LineageError, OSError, ImportError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"lineage {args.command}: {_text.printable(_one_line(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"lineage {args.command}: internal error: {_text.printable(_one_line(exc))} "
              "(rerun with --debug for the traceback and report it)", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            store.close()


def _audit_store_mode(args: argparse.Namespace) -> str | None:
    """``audit --check`` reads a store only when one is named (--store, $LINEAGE_URI);
    writing a report reads the store (the record is written on a second connection)."""
    if args.check is not None:
        return "read" if (args.store or os.environ.get("LINEAGE_URI")) else None
    return "read"


#: Options whose value may start with "-" (``--sort -f1``): argparse would read it as an option.
_SIGNED = ("--sort", "--best")


def _joined_values(argv: list[str]) -> list[str]:
    """``["--sort", "-f1"]`` -> ``["--sort=-f1"]``, so a descending sort key parses."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _SIGNED and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and argv[i + 1] not in ("-h", "--help"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, LineageError) else f"{type(exc).__name__}: {text}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
