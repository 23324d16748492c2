"""The store's own records beside the partitions: which version a validate step checked, how runs went.

`<store>/_checks/<dag_id>/<step>/batch_date=D/checked.json`: the manifest sha256 a validate step
checked, so every later reader of that staged partition (another task process, maybe on another
Celery worker) can insist on exactly that version. `<store>/_runs/<dag_id>/batch_date=D.json`: how a
`dagspec run` / `backfill --local` of the date went, as there is no Airflow database to ask.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from dagspec.store_io import write_bytes

TEMP, CHECKS, RUNS = "_tmp", "_checks", "_runs"


class StoreRecords:
    """Mixed into Store: needs its location, fs, local, _own_path and _read_json."""

    def _put_json(self, path: str, record: dict) -> None:
        """One small JSON file, replaced whole (readers never see half of it) and durably."""
        data = (json.dumps(record, indent=1) + "\n").encode()
        write_bytes(self.fs, path, data, Path(self.location.path) / TEMP if self.local else None)

    def record_check(self, dag_id: str, step_id: str, batch_date: date, schema: str, table: str, digest: str,
                     passed: bool) -> None:
        """A validate step checked this version (manifest sha256) of a staged partition: readers downstream of it
        accept only that version. Timeless, so re-checking identical bytes leaves an identical record."""
        self._put_json(self._check_path(dag_id, step_id, batch_date), {
            "dag_id": dag_id, "step": step_id, "batch_date": batch_date.isoformat(), "partition": f"{schema}.{table}",
            "manifest_sha256": digest, "passed": passed})

    def checked(self, dag_id: str, step_id: str, batch_date: date) -> dict | None:
        """What record_check left for the batch, or None."""
        return self._read_json(self._check_path(dag_id, step_id, batch_date))

    def check_record_uri(self, dag_id: str, step_id: str, batch_date: date) -> str:
        return self.location.uri(self._check_path(dag_id, step_id, batch_date))

    def _check_path(self, dag_id: str, step_id: str, batch_date: date) -> str:
        return self._own_path(CHECKS, dag_id, step_id, f"batch_date={batch_date.isoformat()}", "checked.json")

    def _run_path(self, dag_id: str, batch_date: date) -> str:
        return self._own_path(RUNS, dag_id, f"batch_date={batch_date.isoformat()}.json")

    def record_run(self, dag_id: str, batch_date: date, state: str, error: str | None = None, **about) -> None:
        """How a run of one date went when no Airflow database keeps it (`dagspec run` / `backfill --local`):
        'running' when it starts (a run killed on the way leaves that), 'success' or 'failed' when it ends.
        `about`: the run's id, start time and step states, kept as given."""
        self._put_json(self._run_path(dag_id, batch_date), {
            "dag_id": dag_id, "batch_date": batch_date.isoformat(), "state": state, **about,
            **({"error": error} if error else {})})

    def run_record(self, dag_id: str, batch_date: date) -> dict | None:
        """The record record_run left, or None when no run outside Airflow recorded the date."""
        return self._read_json(self._run_path(dag_id, batch_date))

    def run_state(self, dag_id: str, batch_date: date) -> str | None:
        found = self.run_record(dag_id, batch_date)
        return found["state"] if found else None
