"""The OpenAPI 3.1 description of the UI's JSON endpoints (served at ``/api/openapi.json``).

Written by hand next to the routes: the answers are the library's own ``to_dict()`` shapes
(documented in API.md), so the schema names them and gives their top-level fields.
"""

from __future__ import annotations

from typing import Any

from lineage import __version__

_OBJ: dict[str, Any] = {"type": "object"}
_ERROR = {"description": "an unknown (404) or malformed (400) id, ref or filter",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _param(name: str, where: str, description: str, *, required: bool = False,
           schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema or {"type": "string"}}


def _get(summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
            "400": _ERROR,
            "404": _ERROR,
        },
    }}


_RUN = _param("run", "path", "a run: its unique name, context:ID, ID or experiment/name")
_ARTIFACT = _param("ref", "path", "an artifact: its id, artifact:ID, name or name@VERSION")


def openapi() -> dict[str, Any]:
    """The schema document.

    Example:
        >>> sorted(openapi()["paths"])[:2]
        ['/api/artifacts/{ref}', '/api/artifacts/{ref}/impact']
    """
    return {
        "openapi": "3.1.0",
        "info": {"title": "lineage web UI", "version": __version__,
                 "description": "Read-only JSON views of an ML-Metadata store, the same "
                                "shapes as the library's to_dict()."},
        "paths": {
            "/api/runs": _get("Runs with status, times, params and final metrics "
                              "(store.search_runs(...).to_dict())", "RunSearch", [
                _param("experiment", "query", "only runs of this experiment"),
                _param("where", "query", "a filter KEY OP VALUE (repeatable; OP = != < <= > >=)"),
                _param("sort", "query", "KEY (lowest first) or -KEY (highest first)"),
                _param("limit", "query", "page size (1-1000, default 50)",
                       schema={"type": "integer", "minimum": 1, "maximum": 1000}),
                _param("offset", "query", "runs to skip",
                       schema={"type": "integer", "minimum": 0}),
            ]),
            "/api/runs/{run}": _get("A run's status, steps and their states, and series sizes "
                                    "(what a live run page polls)", "RunStatus", [_RUN]),
            "/api/runs/{run}/metrics": _get("Final metrics and series "
                                            "(lineage.run_metrics(store, run).to_dict())",
                                            "RunMetrics", [_RUN]),
            "/api/artifacts/{ref}": _get("One artifact (lineage show REF --json)", "Artifact",
                                         [_ARTIFACT]),
            "/api/artifacts/{ref}/provenance": _get("store.provenance(ref).to_dict()",
                                                    "Provenance", [_ARTIFACT]),
            "/api/artifacts/{ref}/impact": _get("store.impact(ref).to_dict()", "Impact",
                                                [_ARTIFACT]),
            "/api/artifacts/{ref}/verify": _get("store.verify(ref).to_dict(): re-hashes the "
                                                "content of the lineage now", "Verification",
                                                [_ARTIFACT]),
            "/api/executions/{id}": _get("One execution (lineage show execution:ID --json)",
                                         "Execution",
                                         [_param("id", "path", "execution id or execution:ID")]),
            "/api/diff": _get("store.diff(a, b).to_dict()", "LineageDiff", [
                _param("a", "query", "first artifact ref", required=True),
                _param("b", "query", "second artifact ref", required=True),
            ]),
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "status"], "properties": {
                "error": {"type": "string"}, "status": {"type": "integer"}}},
            "RunSearch": {"type": "object", "required": ["runs", "total", "more"], "properties": {
                "runs": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}},
                "total": {"type": ["integer", "null"]}, "more": {"type": "boolean"},
                "experiment": {"type": ["string", "null"]},
                "where": {"type": "array", "items": {"type": "string"}},
                "sort": {"type": ["string", "null"]}, "limit": {"type": ["integer", "null"]},
                "offset": {"type": "integer"}}},
            "RunSummary": {"type": "object",
                           "required": ["id", "ref", "name", "experiment", "status", "params",
                                        "metrics"],
                           "properties": {
                               "id": {"type": "integer"}, "ref": {"type": "string"},
                               "type": {"type": "string"}, "name": {"type": "string"},
                               "run_name": {"type": ["string", "null"]},
                               "experiment": {"type": ["string", "null"]},
                               "status": {"type": ["string", "null"]},
                               "start_time": {"type": ["number", "null"]},
                               "end_time": {"type": ["number", "null"]},
                               "duration": {"type": ["number", "null"]},
                               "params": _OBJ, "metrics": _OBJ}},
            "RunStatus": {"allOf": [{"$ref": "#/components/schemas/RunSummary"}, {
                "type": "object", "properties": {
                    "steps": {"type": "array", "items": _OBJ},
                    "step_count": {"type": "integer"}, "points": _OBJ}}]},
            "RunMetrics": {"type": "object", "required": ["final", "series"], "properties": {
                "final": _OBJ,
                "series": {"type": "object", "additionalProperties": {
                    "type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}}}}},
            "Artifact": {"type": "object", "required": ["id", "type", "name"], "properties": {
                "id": {"type": "integer"}, "type": {"type": "string"},
                "name": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
                "uri": {"type": ["string", "null"]},
                "fingerprint": {"type": ["string", "null"]}, "properties": _OBJ}},
            "Provenance": {"type": "object",
                           "required": ["target", "datasets", "artifacts", "roots", "steps"],
                           "properties": {
                               "target": {"$ref": "#/components/schemas/Artifact"},
                               "datasets": {"type": "array", "items": _OBJ},
                               "artifacts": {"type": "array", "items": _OBJ},
                               "roots": {"type": "array", "items": {"type": "integer"}},
                               "steps": {"type": "array", "items": _OBJ}}},
            "Impact": {"type": "object", "required": ["source", "artifacts", "executions",
                                                      "by_type"], "properties": {
                "source": {"$ref": "#/components/schemas/Artifact"},
                "artifacts": {"type": "array", "items": _OBJ},
                "executions": {"type": "array", "items": _OBJ}, "by_type": _OBJ}},
            "Verification": {"type": "object", "required": ["ok", "counts", "artifacts"],
                             "properties": {"ok": {"type": "boolean"}, "counts": _OBJ,
                                            "artifacts": {"type": "array", "items": _OBJ}}},
            "Execution": {"type": "object", "required": ["id", "type", "name", "state"],
                          "properties": {
                              "id": {"type": "integer"}, "type": {"type": "string"},
                              "name": {"type": "string"}, "state": {"type": "string"},
                              "params": _OBJ, "inputs": {"type": "array"},
                              "outputs": {"type": "array"},
                              "error": {"type": ["string", "null"]}, "properties": _OBJ}},
            "LineageDiff": {"type": "object", "required": ["a", "b", "is_empty"], "properties": {
                "a": {"$ref": "#/components/schemas/Artifact"},
                "b": {"$ref": "#/components/schemas/Artifact"},
                "is_empty": {"type": "boolean"}, "datasets": {"type": "array"},
                "params": _OBJ, "code": _OBJ, "environment": _OBJ,
                "only_in_a": {"type": "array"}, "only_in_b": {"type": "array"}}},
        }},
    }
