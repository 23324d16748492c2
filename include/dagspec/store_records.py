"""The store's own folders beside the tables: work in progress, which version a check pinned, how runs went.

`<store>/_tmp/`: local writes in progress and the hard links of pinned partitions being read (on the
store's file system, so a rename from there is atomic, and outside every table's folder).

`<store>/_checks/<dag_id>/<step>/batch_date=D/checked.json`: the manifest sha256 a validate step
checked, so every later reader of that staged partition (another task process, maybe on another
Celery worker) can insist on exactly that version. `<store>/_runs/<dag_id>/batch_date=D.json`: how a
`dagspec run` / `backfill --local` of the date went, as there is no Airflow database to ask; beside them
`published/<step>/batch_date=D.json` (what a publish step loaded, for the run's success alert, which Airflow
runs outside the tasks) and `freshness.json` (which tables the scheduled freshness check last alerted as stale).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from dagspec.partitions import Key, as_key
from dagspec.store_io import make_dirs, sync_file_system, write_bytes
from dagspec.store_manifest import Manifest
from dagspec.store_names import CHECKS, RUNS, TEMP


class PartitionChanged(ValueError):
    """The committed partition is not the version the caller pinned (its manifest's sha256 differs)."""

    def __init__(self, schema: str, table: str, batch_date: Key, expected: str, found: str | None):
        super().__init__(f"partition {schema}.{table} {as_key(batch_date).segment} is version "
                         f"{(found or 'none')[:12]}, not the pinned {expected[:12]}")
        self.expected, self.found = expected, found


class StoreRecords:
    """Mixed into Store: needs its location, fs, local, held, _own_path, _read_json, _sweep_local and
    manifest_digest."""

    def local_temp(self, label: str) -> Path:
        """A new, empty folder for a local write in progress: under `<store>/_tmp/`, on the store's file system
        (a rename from it is atomic) and outside every table's folder (no reader's glob ever sees it)."""
        base = Path(self.location.path) / TEMP
        make_dirs(base)
        self._sweep_local(base)
        tmp = base / f"{label}_{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _hold(self, schema: str, table: str, batch_date: Key, prefix: str, manifest: Manifest, digest: str) -> str:
        held = self.local_temp(f"held.{schema}.{table}.{as_key(batch_date).segment.replace('/', '.')}")
        self.held.append(held)
        try:
            for f in manifest.files:
                os.link(f"{prefix}/{f.name}", held / f.name)
        except FileNotFoundError:
            raise PartitionChanged(schema, table, batch_date, digest, None) from None
        except OSError:  # a file system without hard links: read in place, checked only up to here
            return prefix
        now = self.manifest_digest(schema, table, batch_date)
        if now != digest:  # swapped while linking: the links may be of the new version
            raise PartitionChanged(schema, table, batch_date, digest, now)
        return str(held)

    def release(self) -> None:
        """Drop the hard links `dataset(pinned=...)` took (the step that read them has ended)."""
        while self.held:
            shutil.rmtree(self.held.pop(), ignore_errors=True)

    def _put_json(self, path: str, record: dict, durable: bool = True) -> None:
        """One small JSON file, replaced whole (readers never see half of it), durably unless told not to."""
        data = (json.dumps(record, indent=1) + "\n").encode()
        write_bytes(self.fs, path, data, Path(self.location.path) / TEMP if self.local else None, durable=durable)

    def record_check(self, dag_id: str, step_id: str, batch_date: Key, schema: str, table: str, digest: str,
                     passed: bool, durable: bool = True) -> None:
        """A validate step checked this version (manifest sha256) of a staged partition: readers downstream of it
        accept only that version. Timeless, so re-checking identical bytes leaves an identical record.
        `durable=False`: atomic, made durable by the caller's sync_records() before its step ends."""
        self._put_json(self._check_path(dag_id, step_id, batch_date), {
            "dag_id": dag_id, "step": step_id, **_key_json(batch_date), "partition": f"{schema}.{table}",
            "manifest_sha256": digest, "passed": passed}, durable=durable)

    def sync_records(self) -> None:
        """Make every record written with durable=False so far durable, in one flush of the store's disk (objects
        are durable once written)."""
        if self.local:
            sync_file_system(self.location.path)

    def checked(self, dag_id: str, step_id: str, batch_date: Key) -> dict | None:
        """What record_check left for the batch, or None."""
        return self._read_json(self._check_path(dag_id, step_id, batch_date))

    def check_record_uri(self, dag_id: str, step_id: str, batch_date: Key) -> str:
        return self.location.uri(self._check_path(dag_id, step_id, batch_date))

    def _check_path(self, dag_id: str, step_id: str, batch_date: Key) -> str:
        return self._own_path(CHECKS, dag_id, step_id, *as_key(batch_date).segment.split("/"), "checked.json")

    def _run_path(self, dag_id: str, batch_date: Key) -> str:
        return self._keyed_path(batch_date, RUNS, dag_id)

    def _keyed_path(self, batch_date: Key, *folders: str) -> str:
        """`<folders>/batch_date=D.json`, or `.../batch_date=D/batch_time=HHMM.json` for a sub-daily batch."""
        *parts, last = as_key(batch_date).segment.split("/")
        return self._own_path(*folders, *parts, f"{last}.json")

    def record_run(self, dag_id: str, batch_date: Key, state: str, error: str | None = None, *,
                   durable: bool = True, **about) -> None:
        """How a run of one date went when no Airflow database keeps it (`dagspec run` / `backfill --local`):
        'running' when it starts (a run killed on the way leaves that), 'success' or 'failed' when it ends.
        `about`: the run's id, start time and step states, kept as given. `durable=False`: a progress update
        (a step's state) that the run's durable end record replaces; lost to a power cut, the record says an
        earlier 'running', which nothing takes as done."""
        self._put_json(self._run_path(dag_id, batch_date), {
            "dag_id": dag_id, **_key_json(batch_date), "state": state, **about,
            **({"error": error} if error else {})}, durable=durable)

    def run_record(self, dag_id: str, batch_date: Key) -> dict | None:
        """The record record_run left, or None when no run outside Airflow recorded the date."""
        return self._read_json(self._run_path(dag_id, batch_date))

    def run_state(self, dag_id: str, batch_date: Key) -> str | None:
        found = self.run_record(dag_id, batch_date)
        return found["state"] if found else None

    def record_published(self, dag_id: str, step_id: str, batch_date: Key, done: dict) -> None:
        """What a publish step loaded for the batch (target -> rows); a re-run replaces it."""
        self._put_json(self._published_path(dag_id, step_id, batch_date),
                       {"dag_id": dag_id, "step": step_id, **_key_json(batch_date), "published": done})

    def published(self, dag_id: str, step_id: str, batch_date: Key) -> dict | None:
        found = self._read_json(self._published_path(dag_id, step_id, batch_date))
        return found["published"] if found else None

    def _published_path(self, dag_id: str, step_id: str, batch_date: Key) -> str:
        return self._keyed_path(batch_date, RUNS, dag_id, "published", step_id)

    def record_freshness(self, dag_id: str, state: dict) -> None:
        """The stale tables (table -> newest batch_date or None) the last freshness alert was about."""
        self._put_json(self._own_path(RUNS, dag_id, "freshness.json"), {"dag_id": dag_id, "stale": state})

    def freshness_state(self, dag_id: str) -> dict:
        found = self._read_json(self._own_path(RUNS, dag_id, "freshness.json"))
        return dict(found["stale"]) if found else {}


def _key_json(batch_date: Key) -> dict[str, str]:
    """A record's partition fields: batch_date alone for a daily one (as records always were), batch_start too."""
    key = as_key(batch_date)
    start = key.utc_start
    return {"batch_date": key.day.isoformat(), **({"batch_start": start.isoformat()} if start else {})}
