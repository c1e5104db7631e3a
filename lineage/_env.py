"""Code, environment and accountability facts recorded with every step and run: source
hash, git (commit, dirty flag, author), host, packages, the OS user, the CI job, the
command line, and the frozen environment (every installed distribution, OS, CPU, GPU).

Everything that costs a subprocess or a file walk (git, the host name, the installed
distributions) is computed once per process and folder, so recording a step adds no
subprocess.
"""

from __future__ import annotations

import functools
import getpass
import glob
import hashlib
import importlib.metadata
import inspect
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CI_SYSTEMS",
    "ML_PACKAGES",
    "ci_facts",
    "code_facts",
    "command_line",
    "environment_facts",
    "git_facts",
    "host_facts",
    "package_versions",
    "who_facts",
]

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


@functools.lru_cache(maxsize=64)
def _git_author_of_root(root: str) -> str | None:
    """``"Name <email>"`` from the repository's git config (who commits from here)."""
    values = []
    for key in ("user.name", "user.email"):
        try:
            done = subprocess.run(["git", "-C", root, "config", "--get", key],
                                  capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        values.append(done.stdout.strip() if done.returncode == 0 else "")
    name, email = values
    if not name and not email:
        return None
    return f"{name} <{email}>".strip() if email else name


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
    author = _git_author_of_root(str(root))
    if author:
        out["git_author"] = author
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


# --- accountability -----------------------------------------------------------------------

#: CI systems recognised from their environment variables: the variable that says "this is
#: system X", then which variables give the actor, the job id, the job URL, the repository
#: and the workflow/pipeline. Only these are read: never a variable that may carry a token
#: (GitLab's ``CI_REPOSITORY_URL`` does, for one).
CI_SYSTEMS: dict[str, dict[str, tuple[str, ...]]] = {
    "github-actions": {"detect": ("GITHUB_ACTIONS",), "actor": ("GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR"),
                       "job": ("GITHUB_RUN_ID",), "repository": ("GITHUB_REPOSITORY",),
                       "workflow": ("GITHUB_WORKFLOW",), "ref": ("GITHUB_REF",),
                       "commit": ("GITHUB_SHA",)},
    "gitlab-ci": {"detect": ("GITLAB_CI",), "actor": ("GITLAB_USER_LOGIN", "GITLAB_USER_NAME"),
                  "job": ("CI_JOB_ID",), "url": ("CI_JOB_URL",),
                  "repository": ("CI_PROJECT_PATH",), "workflow": ("CI_PIPELINE_ID",),
                  "ref": ("CI_COMMIT_REF_NAME",), "commit": ("CI_COMMIT_SHA",)},
    "jenkins": {"detect": ("JENKINS_URL",), "actor": ("BUILD_USER_ID", "BUILD_USER"),
                "job": ("BUILD_TAG", "BUILD_NUMBER"), "url": ("BUILD_URL",),
                "workflow": ("JOB_NAME",), "commit": ("GIT_COMMIT",)},
    "circleci": {"detect": ("CIRCLECI",), "actor": ("CIRCLE_USERNAME",),
                 "job": ("CIRCLE_BUILD_NUM",), "url": ("CIRCLE_BUILD_URL",),
                 "repository": ("CIRCLE_PROJECT_REPONAME",), "workflow": ("CIRCLE_WORKFLOW_ID",),
                 "commit": ("CIRCLE_SHA1",)},
    "buildkite": {"detect": ("BUILDKITE",), "actor": ("BUILDKITE_BUILD_CREATOR",),
                  "job": ("BUILDKITE_JOB_ID",), "url": ("BUILDKITE_BUILD_URL",),
                  "repository": ("BUILDKITE_PIPELINE_SLUG",), "commit": ("BUILDKITE_COMMIT",)},
    "azure-pipelines": {"detect": ("TF_BUILD",), "actor": ("BUILD_REQUESTEDFOR",),
                        "job": ("BUILD_BUILDID",), "repository": ("BUILD_REPOSITORY_NAME",),
                        "workflow": ("BUILD_DEFINITIONNAME",), "commit": ("BUILD_SOURCEVERSION",)},
    "travis": {"detect": ("TRAVIS",), "job": ("TRAVIS_JOB_ID",), "url": ("TRAVIS_JOB_WEB_URL",),
               "repository": ("TRAVIS_REPO_SLUG",), "commit": ("TRAVIS_COMMIT",)},
}


def ci_facts(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Who and which CI job is running this, from the usual CI environment variables.

    Returns ``{}`` outside CI; ``{"system": "ci"}`` when only ``CI=true`` is set.

    Example:
        >>> ci_facts({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "42",
        ...           "GITHUB_REPOSITORY": "o/r", "GITHUB_SERVER_URL": "https://github.com"})
        {'system': 'github-actions', 'actor': 'octocat', 'job': '42', 'repository': 'o/r', 'url': 'https://github.com/o/r/actions/runs/42'}
        >>> ci_facts({})
        {}
    """
    env = os.environ if environ is None else environ
    for system, keys in CI_SYSTEMS.items():
        if not any(env.get(k) for k in keys["detect"]):
            continue
        out = {"system": system}
        for field, names in keys.items():
            if field == "detect":
                continue
            value = next((env[n] for n in names if env.get(n)), None)
            if value:
                out[field] = value
        if system == "github-actions" and "url" not in out and out.get("job") and \
                env.get("GITHUB_SERVER_URL") and out.get("repository"):
            out["url"] = f"{env['GITHUB_SERVER_URL']}/{out['repository']}/actions/runs/{out['job']}"
        return out
    if str(env.get("CI", "")).lower() in ("1", "true", "yes"):
        return {"system": "ci"}
    return {}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry (containers) and no $USER
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


@functools.lru_cache(maxsize=1)
def who_facts() -> dict[str, Any]:
    """Who runs this process: the OS user and, in CI, the CI system, actor and job
    (cached per process; the git author comes with :func:`git_facts`).

    Example:
        >>> "user" in who_facts()
        True
    """
    out: dict[str, Any] = {"user": _os_user()}
    ci = ci_facts()
    if ci:
        out["ci"] = ci
    return out


#: Options whose value is a secret: their value is not recorded with the command line.
_SECRET_OPTION = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|credential|auth)", re.I)


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, shell-quoted; values of options that look
    like secrets (``--password``, ``--api-key=…``) and passwords in URLs are replaced by
    ``***``.

    Example:
        >>> command_line(["train.py", "--lr", "0.1", "--api-key", "xyz", "--token=abc"])
        'train.py --lr 0.1 --api-key *** --token=***'
    """
    from lineage.errors import redact

    args = list(sys.argv if argv is None else argv)
    if args and args[0] and os.path.exists(args[0]) and argv is None:
        args[0] = os.path.relpath(args[0]) if not os.path.isabs(args[0]) else args[0]
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        if arg.startswith("-") and _SECRET_OPTION.search(arg.split("=", 1)[0]):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact(arg))
    return " ".join(shlex.quote(a) if a != "***" and not a.endswith("=***") else a for a in out)


# --- the frozen environment -----------------------------------------------------------------


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    """GPUs the NVIDIA driver exposes (``/proc/driver/nvidia``); no subprocess, no import."""
    found = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            text = Path(info).read_text(errors="replace")
        except OSError:
            continue
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                      if line.lower().startswith("model:")), None)
        if model:
            found.append(model)
    torch = sys.modules.get("torch")
    if not found and torch is not None:
        try:
            cuda = torch.cuda
            if cuda.is_available():
                found = [str(cuda.get_device_name(i)) for i in range(cuda.device_count())]
        except Exception:  # a broken CUDA set-up: record none rather than fail a step
            found = []
    return found


@functools.lru_cache(maxsize=1)
def environment_facts() -> dict[str, Any]:
    """The frozen environment of this process: Python, OS, CPU, GPUs and every installed
    distribution with its version (``pip freeze`` minus editable paths), cached per
    process. Recorded once per distinct environment (see :mod:`lineage.environment`).

    Example:
        >>> env = environment_facts()
        >>> sorted(env)
        ['cpu', 'cpu_count', 'gpus', 'machine', 'os', 'packages', 'python']
        >>> "networkx" in env["packages"]
        True
    """
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            packages.setdefault(_normal_name(str(name)), str(dist.version))
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count() or 0,
        "gpus": _gpus(),
        "packages": dict(sorted(packages.items())),
    }


def _normal_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()
