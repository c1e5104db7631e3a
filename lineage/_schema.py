"""How ``lineage`` lays its records out in MLMD: type names, property names, conventions.

Everything here is readable by any MLMD tool; nothing is kept outside MLMD.

Artifacts (types ``Dataset``, ``Model``, ``Metrics``, ``Config`` and user subclasses):
    MLMD ``name``        ``"<name>@<version>"`` (unique per type, so two writers cannot both
                         create the same version)
    ``external_id``      ``"lineage:<sha256 of type, name and content identity>"`` (unique, so
                         the same content under the same name is recorded once)
    typed properties     ``version`` (INT), ``fingerprint`` (STRING, ``"<algo>:<hex>"``),
                         ``previous_version`` (INT, the artifact id of version n-1),
                         ``locations`` (PROTO, every ``[uri, host]`` the content was seen
                         at), ``current_version`` (INT, on the newest version: the version
                         most recently recorded, see :mod:`lineage._identity`), and the
                         properties the artifact class declares
    custom properties    any other keyword given to the artifact, and ``kept`` (STRUCT):
                         where the version's bytes are kept (``objects`` URL, object
                         ``key``, ``kind``, ``size``; see :mod:`lineage.keeping`)

Executions (one execution type per step, named like the step, base type from ``kind``):
    typed properties     :data:`STEP_PROPERTIES`: code, environment and timing; the
                         ``recorded_by`` property marks the type as ours
    custom properties    the step's parameters, one property per parameter
    state                MLMD's ``last_known_state`` (RUNNING, COMPLETE, FAILED, CACHED,
                         CANCELED)

Audit records (:mod:`lineage.audits`, :mod:`lineage.approvals`, :mod:`lineage.environment`):
    ``Environment`` artifacts hold a frozen environment (every installed distribution, OS,
    CPU, GPU) as in-memory content, recorded once per distinct environment; executions
    and runs name theirs in the typed ``environment`` property. An ``audit`` execution
    reads the audited artifact and writes an ``AuditReport`` (the report file, its
    embedded digest in ``digest``); an ``approve`` execution reads the approved artifact
    and writes an ``Approval`` (who, when, a note, optionally an Ed25519 signature).

Contexts: ``Experiment`` and ``Run`` (a run's parent context is its experiment).
    Run custom properties are the run's params; its typed ``metrics`` holds the final
    metric values. ``execution_cache`` contexts (named by a cache key) group the COMPLETE
    executions a cached step call can reuse.

Data held in contexts (:data:`HIDDEN_CONTEXT_TYPES`, not shown as graph nodes):
    ``MetricChunk``      metric points and confusion matrices of a run or step call,
                         children of the run (:mod:`lineage._series`)
    ``MetricSeries``     parent of the chunks of a step called outside any run
    ``Annotation``       tags and note of an artifact or run (:mod:`lineage.tags`)
    ``Alias``            ``name@alias`` → one artifact version, with its moves
"""

from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2 as pb

#: Typed properties every artifact type of ours declares.
ARTIFACT_PROPERTIES: dict[str, int] = {
    "version": pb.INT,
    "fingerprint": pb.STRING,
    "previous_version": pb.INT,
    # every location the content was seen at: [[uri, host], ...] in a packed
    # google.protobuf.Value (a list; unindexed, so it can grow)
    "locations": pb.PROTO,
    # on the newest version only: the version whose content was most recently recorded
    # (absent: the newest version is current)
    "current_version": pb.INT,
}

#: Typed properties every execution type of ours (one per step) declares.
STEP_PROPERTIES: dict[str, int] = {
    "recorded_by": pb.STRING,
    "function": pb.STRING,
    "source_hash": pb.STRING,
    # the step's source and the project's own code it refers to (lineage._env.code_hash)
    "code_hash": pb.STRING,
    "git_commit": pb.STRING,
    "git_dirty": pb.BOOLEAN,
    "git_repo": pb.STRING,
    "script": pb.STRING,
    "hostname": pb.STRING,
    "python": pb.STRING,
    "packages": pb.STRUCT,
    "start_time": pb.DOUBLE,
    "end_time": pb.DOUBLE,
    "duration": pb.DOUBLE,
    "error": pb.STRING,
    "traceback": pb.STRING,
    "cache_key": pb.STRING,
    # added by steps.py (issue 3):
    "returns": pb.STRING,  # shape of the return value: artifact/tuple/list/dict/none/other
    "parent_execution": pb.INT,  # the step that called this one (nested steps)
    "cached_from": pb.INT,  # a CACHED execution: the COMPLETE execution whose outputs it reused
    "metrics": pb.STRUCT,  # final value of each metric logged in the step
    "metrics_packed": pb.PROTO,  # the same, when too big for an index row (see _convert)
    # metric -> [[step, value], ...] for metrics logged with step=; PROTO (a packed
    # google.protobuf.Value), not STRUCT: MLMD indexes structs and long series would not fit
    "metric_series": pb.PROTO,
    # added by queries (issue 4): id of the Run context the step was called in, so queries
    # find the run without get_contexts_by_execution (a scan: Association has no index on it)
    "run_context": pb.INT,
    # added by the audit work (issue 18): who ran the step and in which environment
    "user": pb.STRING,  # the OS user
    "git_author": pb.STRING,  # "Name <email>" from the git config of the step's repository
    "ci": pb.STRUCT,  # CI system, actor, job, url, repository (lineage._env.CI_SYSTEMS)
    "command": pb.STRING,  # the process's command line, secret-looking option values hidden
    "source_file": pb.STRING,  # the file that defines the step's function
    "environment": pb.INT,  # artifact id of the Environment (lineage.environment) it ran in
    # output event path -> the largest execution id in the store when that output was
    # written: where the production falls in the store's own order of records (see
    # lineage._timeline; PROTO: a packed google.protobuf.Value)
    "output_seq": pb.PROTO,
}

#: Typed properties of RUNNING executions and runs that tell a live one from an abandoned
#: one (:mod:`lineage._liveness`, ``lineage doctor``): the recording process's ``pid``,
#: its start time (``process_start``, seconds since the epoch), ``process_id``
#: (``"<boot id>:<pid namespace>:<pid>:<start ticks>"``, exact on Linux), and
#: ``heartbeat`` (seconds since the epoch, renewed while it runs). Executions carry the
#: host in ``hostname`` already; runs get it too. ``error`` on a run is set by
#: ``lineage doctor --fix`` (``"abandoned: ..."``).
LIVENESS_PROPERTIES: dict[str, int] = {
    "pid": pb.INT,
    "process_start": pb.DOUBLE,
    "process_id": pb.STRING,
    "heartbeat": pb.DOUBLE,
}
STEP_PROPERTIES.update(LIVENESS_PROPERTIES)

#: The typed property that marks an execution type as written by ``lineage``.
RECORDED_BY = "recorded_by"

EXPERIMENT_TYPE = "Experiment"
RUN_TYPE = "Run"
#: Context type grouping the executions of a cacheable step call (TFX's convention);
#: the context ``name`` is the cache key, so a lookup is one indexed query.
CACHE_CONTEXT_TYPE = "execution_cache"

#: Typed properties of our context types.
RUN_PROPERTIES: dict[str, int] = {
    "recorded_by": pb.STRING,
    "run_name": pb.STRING,
    "experiment": pb.STRING,
    "start_time": pb.DOUBLE,
    "end_time": pb.DOUBLE,
    "status": pb.STRING,
    # added by steps.py (issue 3):
    "metrics": pb.STRUCT,  # final value of each metric logged in the run (and its steps)
    "metrics_packed": pb.PROTO,  # the same, when too big for an index row (see _convert)
    "metric_series": pb.PROTO,  # as in STEP_PROPERTIES
    "config": pb.STRUCT,  # config file name -> artifact id of its Config artifact
    # added by the audit work (issue 18): who ran it, where, how
    "user": pb.STRING,
    "git_author": pb.STRING,
    "ci": pb.STRUCT,
    "command": pb.STRING,
    "hostname": pb.STRING,
    "environment": pb.INT,
    # added by issue 11: see LIVENESS_PROPERTIES
    "error": pb.STRING,
    **LIVENESS_PROPERTIES,
}
EXPERIMENT_PROPERTIES: dict[str, int] = {"recorded_by": pb.STRING}

#: Context types that hold data, not groups of records (metric chunks and their holders,
#: tags, notes and aliases): never runs, never nodes of the graph (:mod:`lineage._series`,
#: :mod:`lineage.tags`).
HIDDEN_CONTEXT_TYPES = frozenset({"MetricChunk", "MetricSeries", "Annotation", "Alias"})

#: ``kind=`` of a step → MLMD execution base type.
STEP_KINDS: dict[str, int] = {
    "process": pb.ExecutionType.PROCESS,
    "transform": pb.ExecutionType.TRANSFORM,
    "train": pb.ExecutionType.TRAIN,
    "evaluate": pb.ExecutionType.EVALUATE,
    "deploy": pb.ExecutionType.DEPLOY,
}

#: Event types whose edge runs artifact → execution (the artifact was read).
INPUT_EVENTS = frozenset({pb.Event.INPUT, pb.Event.DECLARED_INPUT, pb.Event.INTERNAL_INPUT})
#: Event types whose edge runs execution → artifact (the artifact was written or declared).
OUTPUT_EVENTS = frozenset(
    {pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_OUTPUT, pb.Event.PENDING_OUTPUT}
)
