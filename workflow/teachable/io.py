"""Reading and writing phase outputs. Every write is atomic (temp file or directory + rename), so
an output appears whole or not at all even when a job dies mid-write."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temp path next to ``path``; renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):  # mkstemp makes 0600; give the output the mode a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh empty directory next to ``path``; renamed onto ``path`` only if the block
    succeeds, replacing an existing ``path`` (the old one is moved aside first, then deleted).
    A failure inside the block leaves ``path`` as it was and removes the temp directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()  # (not mkdtemp: the directory gets the umask's permissions, as any output)
    try:
        yield tmp
        if path.exists():
            old = tmp.with_suffix(".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _unreadable(path, what: str, e: Exception) -> ValueError:
    return ValueError(f"{path} is not a readable {what} file ({type(e).__name__}: {e}); it may be truncated by a "
                      "job that died: delete it and re-run the rule that writes it (snakemake re-creates "
                      "missing outputs)")  # fmt: skip


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A phase output; a missing file and an unreadable (e.g. truncated) one are errors naming it."""
    import pyarrow as pa

    if not Path(path).exists():
        raise FileNotFoundError(f"expected phase output {path} does not exist")
    try:
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise _unreadable(path, "Parquet", e) from e


def write_table(df: pd.DataFrame, table, path: str | os.PathLike) -> None:
    """A declared table (``schemas``): checked against its declaration, then written atomically
    (Parquet, or CSV for a ``.csv`` path), columns in the declared order."""
    from .schemas import check_frame, family_columns

    check_frame(df, table, str(path))
    order = [c for c in [*table.columns, *family_columns(table)] if c in df.columns]
    df = df[order]
    if str(path).endswith(".csv"):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
    else:
        write_parquet(df, path)


def read_table(path: str | os.PathLike, table) -> pd.DataFrame:
    """A declared table, checked against its declaration (errors name the file)."""
    from .schemas import check_frame

    if str(path).endswith(".csv"):
        if not Path(path).exists():
            raise FileNotFoundError(f"expected phase output {path} does not exist")
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError as e:
            raise _unreadable(path, "CSV", e) from e
    else:
        df = read_parquet(path)
    check_frame(df, table, str(path))
    return df


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    """NaN/inf become null, so every JSON we write is strict JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if hasattr(o, "tolist"):
        return _finite(o.tolist())
    if hasattr(o, "item"):
        return _finite(o.item())
    return o


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(obj), indent=2, default=_default, allow_nan=False) + "\n")


def write_doc(obj: Any, doc, path: str | os.PathLike) -> None:
    """A declared JSON document (``documents``): checked against its declaration (as it will
    read back: NaN as null), then written atomically."""
    from .documents import check_doc

    obj = _finite(obj)
    check_doc(obj, doc, str(path))
    write_json(obj, path)


def read_doc(path: str | os.PathLike, doc) -> dict:
    """A declared JSON document, checked against its declaration (errors name the file)."""
    from .documents import check_doc

    obj = read_json(path)
    check_doc(obj, doc, str(path))
    return obj


def write_jsonl(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON phase output; a missing or unparsable (e.g. truncated) file is an error naming it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"expected phase output {p} does not exist")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _unreadable(p, "JSON", e) from e
