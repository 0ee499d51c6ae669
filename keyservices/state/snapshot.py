"""Last night's facts: the per-customer numbers the rules compared, kept for tomorrow's "why".

One compressed ``.npz`` per night in ``<state dir>/facts/``: the customer ids (delta-coded), one
float64 array per rule column named by its definition, and a little JSON (date, run, ERP,
level, each service's checks). Compact arrays, not rows: a few MB at a million customers. The
two newest nights are kept, so that ``explain`` after this morning's run still compares with
last night. Written only by a clean live run, atomically (a temporary file, then a rename): a
run killed while saving leaves the previous file as it was.

An unreadable file is never a reason to stop the night: it is logged and reported as "could
not be read", and the causes say so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "facts"
KEEP = 2  # nights kept: tonight's, and the one before it (for explain after the run)
VERSION = 1


@dataclass(slots=True)
class Snapshot:
    """One night's numbers as stored: per column key, its values in ``ids`` order."""

    as_of: dt.date
    ids: np.ndarray  # int64 customer ids, ascending
    columns: dict[str, np.ndarray]  # float64, one value per id
    meta: dict[str, Any] = field(default_factory=dict)  # run_id, erp_id, level, signatures


def folder(state_dir: Path) -> Path:
    return Path(state_dir) / FOLDER


def _name(as_of: dt.date) -> str:
    return f"facts-{as_of.isoformat()}.npz"


def save(state_dir: Path, as_of: dt.date, ids: np.ndarray, columns: Mapping[str, np.ndarray],
         meta: Mapping[str, Any]) -> Path:
    """Store one night (replacing a run of the same date) and drop all but the newest ``KEEP``.

    ``columns`` maps each column's key to its values in ``ids`` order; views are fine (each is
    written as it is, so no full-size copy of the night's numbers is made).
    """
    target_dir = folder(state_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(ids, dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "ids_delta": np.diff(ids, prepend=np.int64(0)),
        "keys": np.array(list(columns), dtype=np.str_),
        "meta": np.array(json.dumps({**meta, "as_of": as_of.isoformat(), "version": VERSION})),
    }
    for j, values in enumerate(columns.values()):
        arrays[f"c{j}"] = np.asarray(values, dtype=np.float64)
    target = target_dir / _name(as_of)
    fd, tmp = tempfile.mkstemp(prefix=".facts-", suffix=".tmp", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            # numpy's default, named so that mypy does not match ``**arrays`` against it
            np.savez_compressed(fh, allow_pickle=True, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in sorted(target_dir.glob("facts-*.npz"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return target


def before(state_dir: Path, as_of: dt.date) -> tuple[Snapshot | None, str | None]:
    """The newest night kept before ``as_of``, or None and why not (briefly)."""
    target_dir = folder(state_dir)
    kept = sorted(target_dir.glob("facts-*.npz")) if target_dir.is_dir() else []
    earlier = [p for p in kept if p.name < _name(as_of)]
    if not earlier:
        return None, ("no facts kept from an earlier live run (first night)" if not kept else
                      "the facts kept are from a later date (a backfill run)")
    path = earlier[-1]
    try:
        return load(path), None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError,
            zipfile.BadZipFile) as exc:
        log.warning("last night's facts %s could not be read (%s); the causes of tonight's "
                    "changes are not compared", path, exc)
        return None, f"last night's facts could not be read ({path.name})"


def load(path: Path) -> Snapshot:
    """One stored night (``allow_pickle`` stays off: only plain arrays are read)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("version") != VERSION:
            raise ValueError(f"version {meta.get('version')!r}, this keyservices reads {VERSION}")
        ids = np.cumsum(data["ids_delta"], dtype=np.int64)
        columns = {}
        for j, key in enumerate(data["keys"].tolist()):
            column = data[f"c{j}"]
            if column.shape != (len(ids),) or column.dtype != np.float64:
                raise ValueError(f"column {j} holds {column.shape} {column.dtype} values for "
                                 f"{len(ids)} ids")
            columns[str(key)] = column
    return Snapshot(as_of=dt.date.fromisoformat(meta["as_of"]), ids=ids, columns=columns,
                    meta=meta)


__all__ = ["Snapshot", "before", "folder", "load", "save"]
