"""Code and environment facts recorded with every step: source hash, git, host, packages.

Everything that costs a subprocess or a file walk (git, the host name) is computed once
per process and folder, so recording a step adds no subprocess.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
import platform
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ML_PACKAGES", "code_facts", "git_facts", "host_facts", "package_versions"]

#: Import names whose versions are recorded when they are imported (distribution name).
ML_PACKAGES: dict[str, str] = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "jax": "jax",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "transformers": "transformers",
    "datasets": "datasets",
    "polars": "polars",
    "pyarrow": "pyarrow",
    "statsmodels": "statsmodels",
    "ml_metadata": "ml-metadata",
}


def _unwrap(func: Callable[..., Any]) -> Callable[..., Any]:
    inner = inspect.unwrap(func)
    unwrapped: Callable[..., Any] = getattr(inner, "__func__", inner)
    return unwrapped


def code_facts(func: Callable[..., Any]) -> dict[str, str]:
    """The function's qualified name, a hash of its source and its file.

    The source is dedented and hashed with SHA-256; when it cannot be read (a lambda in a
    REPL, a C function) the bytecode and constants are hashed instead.

    Example:
        >>> def f(x):
        ...     return x + 1
        >>> facts = code_facts(f)
        >>> facts["function"].endswith("f"), facts["source_hash"][:7]
        (True, 'sha256:')
    """
    inner = _unwrap(func)
    module = getattr(inner, "__module__", None) or "?"
    qualname = getattr(inner, "__qualname__", None) or getattr(inner, "__name__", repr(inner))
    try:
        source = textwrap.dedent(inspect.getsource(inner)).encode("utf-8")
    except (OSError, TypeError):
        code = getattr(inner, "__code__", None)
        source = (
            code.co_code + repr(code.co_consts).encode() if code is not None else repr(inner).encode()
        )
    try:
        file = inspect.getsourcefile(inner) or inspect.getfile(inner)
    except TypeError:
        file = ""
    path = os.path.abspath(file) if file and not file.startswith("<") else ""
    return {
        "function": f"{module}.{qualname}",
        "source_hash": "sha256:" + hashlib.sha256(source).hexdigest(),
        "code_hash": code_hash(inner, source, path),
        "file": path,
    }


#: How many functions, classes and modules a code hash follows at most.
_CODE_LIMIT = 300


def _project_of(file: str) -> Path | None:
    """The folder whose code counts as the project's own: the git repository of ``file``,
    else its folder."""
    if not file:
        return None
    folder = Path(file).resolve().parent
    return _repo_root(folder) or folder


def _installed(file: Path) -> bool:
    parts = set(file.parts)
    return "site-packages" in parts or "dist-packages" in parts or any(
        file.is_relative_to(Path(p)) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}
        if p and Path(p) != Path("/"))


def _local_file(obj: object, project: Path) -> Path | None:
    try:
        found = inspect.getsourcefile(obj)  # type: ignore[arg-type]
    except TypeError:
        return None
    if not found:
        return None
    path = Path(found).resolve()
    return path if path.is_relative_to(project) and not _installed(path) else None


def _names(code: Any) -> set[str]:
    """Global names a code object (and the code objects nested in it) refers to."""
    out = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            out |= _names(const)
    return out


def code_hash(func: Callable[..., Any], source: bytes, file: str) -> str:
    """A digest of a step's code: its own source, the source of the project's functions
    and classes it refers to by name (followed transitively), and the whole files of the
    project's modules it refers to. A project is the git repository of the step's file
    (else its folder); installed packages are left out (their versions are recorded).

    Not seen: code reached by name at run time (``getattr``, ``importlib``), imports inside
    a function body of modules never referred to by a global name, data files the code
    reads, and anything outside the project.

    Example:
        >>> def f(x):
        ...     return x + 1
        >>> code_hash(f, b"def f(x): return x + 1", "")[:7]
        'sha256:'
    """
    project = _project_of(file)
    parts: dict[str, bytes] = {"": source}
    if project is not None:
        seen: set[int] = {id(func)}
        queue: list[Any] = [func]
        while queue and len(seen) < _CODE_LIMIT:
            obj = queue.pop()
            codes = []
            if inspect.isfunction(obj):
                codes.append(obj.__code__)
                scope = obj.__globals__
            elif inspect.isclass(obj):
                codes += [m.__code__ for m in vars(obj).values() if inspect.isfunction(m)]
                scope = vars(sys.modules.get(obj.__module__, sys)) if obj.__module__ else {}
            else:
                continue
            for name in sorted(set().union(*map(_names, codes)) if codes else ()):
                value = scope.get(name)
                if value is None or id(value) in seen:
                    continue
                if inspect.ismodule(value):
                    path = _local_file(value, project)
                    if path is not None:
                        seen.add(id(value))
                        parts[f"module {value.__name__}"] = path.read_bytes()
                elif inspect.isfunction(value) or inspect.isclass(value):
                    if _local_file(value, project) is None:
                        continue
                    seen.add(id(value))
                    try:
                        text = inspect.getsource(value).encode("utf-8")
                    except (OSError, TypeError):
                        continue
                    parts[f"{value.__module__}.{value.__qualname__}"] = text
                    queue.append(value)
    digest = hashlib.sha256()
    for key in sorted(parts):
        digest.update(key.encode() + b"\0" + hashlib.sha256(parts[key]).digest())
    return "sha256:" + digest.hexdigest()


def _repo_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


@functools.lru_cache(maxsize=64)
def _git_of_root(root: str) -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", root, *args], capture_output=True, text=True, timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit.strip() or None, (bool(status.strip()) if status is not None else None)


@functools.lru_cache(maxsize=256)
def git_facts(file: str) -> dict[str, Any]:
    """The git repository a file lives in: root, HEAD commit and dirty flag (cached).

    Returns an empty dict outside a repository or when ``git`` is missing. The dirty flag
    ignores untracked files and is taken once per process.

    Example:
        >>> git_facts("/")
        {}
    """
    if not file:
        return {}
    root = _repo_root(Path(file).resolve().parent)
    if root is None:
        return {}
    commit, dirty = _git_of_root(str(root))
    if commit is None:
        return {}
    out: dict[str, Any] = {"git_repo": str(root), "git_commit": commit}
    if dirty is not None:
        out["git_dirty"] = dirty
    return out


@functools.lru_cache(maxsize=1)
def host_facts() -> dict[str, str]:
    """Host name, Python version and the script being run (cached per process).

    Example:
        >>> sorted(host_facts())
        ['hostname', 'python', 'script']
    """
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if script and script not in ("-c", "-m") and os.path.exists(script):
        script = os.path.abspath(script)
    return {
        "hostname": socket.gethostname(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "script": script,
    }


@functools.lru_cache(maxsize=128)
def _version_of(import_name: str, dist: str) -> str | None:
    module = sys.modules.get(import_name)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """Versions of the ML packages imported so far in this process.

    Example:
        >>> import numpy
        >>> "numpy" in package_versions()
        True
    """
    out: dict[str, str] = {}
    modules = sys.modules
    for import_name, dist in ML_PACKAGES.items():
        if import_name in modules:
            version = _version_of(import_name, dist)
            if version:
                out[dist] = version
    return out
