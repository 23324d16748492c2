"""dagspec remote drops: an Airflow DAG that syncs definitions from S3/GCS into definitions/.

Set DAGSPEC_SYNC_URI (s3://bucket/prefix or gs://bucket/prefix) and DAGSPEC_SYNC_CONN_ID (an aws or
google_cloud_platform connection) to enable it; DAGSPEC_SYNC_SCHEDULE overrides the 5-minute cadence.
The sync validates before anything goes live; the loader files pick the new files up on its next
parse. A rejected definition fails the task, so the UI shows it, with each error in the log.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

from dagspec.airflow.sync_dag import build_sync_dag

if os.environ.get("DAGSPEC_SYNC_URI"):
    dagspec_sync = build_sync_dag(
        uri=os.environ["DAGSPEC_SYNC_URI"],
        conn_id=os.environ.get("DAGSPEC_SYNC_CONN_ID", "dagspec_drops"),
        target=Path(__file__).resolve().parent / "definitions",
        schedule=os.environ.get("DAGSPEC_SYNC_SCHEDULE", "*/5 * * * *"),
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
    )
