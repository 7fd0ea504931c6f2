"""Sandbox results by content: a run's jobs share one directory (``env.sandbox.cache_dir``), so a
restored state replays its tool results exactly (a timed-out program too) without running them.

    ResultCache(directory).run(code, html, SandboxConfig()) -> dict   # run_sandboxed(...).as_dict()

An entry is ``<directory>/<key[:2]>/<key>.json`` (``result_key``), holding ``{"key", "result"}``.
It is written once: to a temporary file in the same directory, then published with ``os.link``,
which fails when the entry exists, so the first of concurrent writers of a key wins and every
caller returns the entry as stored (``os.replace`` where the file system has no hard links).
A corrupt entry raises ``CorruptEntry`` naming its file; ``SandboxUnavailable`` propagates
(nothing runs unisolated). ``in_process_first=True``: a G program runs through
``grammar.run_in_process`` (``seconds`` 0.0), not cached; anything else, or a G program it
cannot vouch for, goes through the cache."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

from .grammar import run_in_process
from .sandbox import VERSION, SandboxConfig, run_sandboxed

RESULT_FIELDS = {"stdout": str, "stderr": str, "error": (str, type(None)), "exit_code": int, "timed_out": bool,
                 "output_truncated": bool, "seconds": (int, float)}  # fmt: skip
LIMITS = ("timeout_s", "memory_mb", "tmpfs_mb", "tasks", "open_files", "file_mb", "output_bytes")


class CorruptEntry(ValueError):
    """A cache entry that does not hold a result for its key; the message names its file."""


def result_key(code: str, html: str, config: SandboxConfig) -> str:
    """sha256 (hex) of what decides a sandbox's result: ``sandbox.VERSION``, the interpreter,
    the limits, the page and the code. (The site directory is the ``html`` extra's pins, which
    ``VERSION`` stands for.)"""
    what = {"sandbox": VERSION, "python": config.python, "limits": {k: getattr(config, k) for k in LIMITS},
            "html": html, "code": code}  # fmt: skip
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    """Sandbox results under ``directory`` by ``result_key`` (module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def run(self, code: str, html: str, config: SandboxConfig = SandboxConfig(), *,
            in_process_first: bool = False) -> dict:  # fmt: skip
        """``run_sandboxed(code, html, config).as_dict()``: the stored entry when there is one,
        else a fresh sandbox's result, stored."""
        if in_process_first and (result := run_in_process(code, html, config)) is not None:
            return result
        key = result_key(code, html, config)
        path = self.path(key)
        if path.exists():
            return self._read(path, key)
        result = run_sandboxed(code, html, config).as_dict()
        self._publish(path, key, result)
        return self._read(path, key)

    def _read(self, path: Path, key: str) -> dict:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CorruptEntry(f"sandbox cache entry {path} is unreadable: {e}") from None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("result"), dict):
            raise CorruptEntry(f"sandbox cache entry {path} does not hold a result for key {key}")
        result = entry["result"]
        if set(result) != set(RESULT_FIELDS):
            raise CorruptEntry(f"sandbox cache entry {path} has fields {sorted(result)}, expected {sorted(RESULT_FIELDS)}")
        for name, kind in RESULT_FIELDS.items():
            if not isinstance(result[name], kind) or (kind is int and isinstance(result[name], bool)):
                raise CorruptEntry(f"sandbox cache entry {path}: {name} is {result[name]!r}")
        return result

    def _publish(self, path: Path, key: str, result: dict) -> None:
        """Write the entry once: a temporary file, then a link that fails if another writer won."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"key": key, "result": result}, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # a concurrent writer published this key first: its entry stands
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                if not path.exists():
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

