"""Hostile secrets: passwords made of every printable special character (and unicode) never leave dagspec,
in any encoding, through any path (issue 12 defect 2).

Trust auth accepts any password, so each failure is forced another way (a wrong database, a wrong port)
so that the error message echoes the connection string, as DuckDB's ATTACH does.
"""

from __future__ import annotations

import base64
import json
import os
import string
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from conftest import need

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.errors import StepFailed
from dagspec.runner import run_step
from dagspec.secrets import scrub
from dagspec.spec.model import Pipeline

ROOT = Path(__file__).resolve().parents[2]
UTC = UTC
DAY = date(2025, 3, 1)
SPECIALS = string.punctuation + " "
PASSWORDS = [
    "pw" + SPECIALS + "end",
    "a'b\\c",  # the two characters libpq escapes, side by side
    "\\'" * 3 + "''\"\"",
    "p%41ss+w@rd/?#&=",  # looks URL-encoded already
    "naïve-café-漢字-🎉-ß\u200d",
]
IDS = ["all-specials", "quote-backslash", "escapes-only", "url-like", "unicode"]


def encodings_of(secret: str, login: str = "") -> set[str]:
    """The forms a test looks for, computed here independently of dagspec.secrets."""
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    once = {
        secret, libpq, secret.replace("'", "''"), libpq.replace("'", "''"),
        quote(secret, safe=""), quote(secret), quote_plus(secret), quote(secret, safe=" +"),
        quote(secret, safe="").lower(), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1], ascii(secret)[1:-1], repr(libpq)[1:-1], json.dumps(libpq)[1:-1],
        base64.b64encode(secret.encode()).decode(), base64.b64encode(f"{login}:{secret}".encode()).decode(),
    }
    return {f for f in once if len(f) >= 3}


def assert_clean(text: str, secret: str, login: str = "") -> None:
    leaked = [f for f in encodings_of(secret, login) if f in text]
    assert not leaked, f"{leaked} in:\n{text[-3000:]}"
    assert scrub(text, [secret]) == text, text[-3000:]


# ---------------------------------------------------------------- the scrubber itself


@pytest.mark.parametrize("secret", PASSWORDS, ids=IDS)
def test_every_encoding_and_every_pair_of_encodings_is_removed(secret):
    forms = encodings_of(secret, "user")
    nested = {json.dumps(f)[1:-1] for f in forms} | {repr(f)[1:-1] for f in forms} | {quote(f) for f in forms}
    for form in forms | nested:
        text = f"error: could not connect with password='{form}' and more"
        clean = scrub(text, [secret], [("user", secret)])
        assert_clean(clean, secret, "user")
        assert clean.startswith("error: could not connect") and clean.endswith(" and more"), clean


def test_a_password_in_a_libpq_string_is_masked_even_when_unknown():
    text = """IO Error: Unable to connect to Postgres at "host='h' password='a\\'b\\\\c d' dbname='x'": refused"""
    assert scrub(text) == """IO Error: Unable to connect to Postgres at "host='h' password='***' dbname='x'": refused"""


def test_airflows_masker_learns_every_form(monkeypatch):
    """Inside a task, the task log and the supervisor's log are Airflow's: its masker gets the forms too."""
    from airflow.sdk.log import redact

    secret = f"s3cr'et\\{uuid.uuid4().hex[:6]}"
    ConnectionInfo("ds_sec_airflow", "postgres", password=secret)
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    assert redact(f"password='{libpq}'") == "password='***'"
    assert secret not in redact(f"postgres://u:{quote(secret, safe='')}@h/db")


def test_every_connection_seen_is_hidden_from_any_later_output_extras_too():
    """Registered when the connection is built, so a log line or an error far from the connection is
    scrubbed as well (the CLI's log handler, run_step's escaping exceptions, validation reports)."""
    from dagspec.secrets import scrub_known

    password, token = f"pw'{uuid.uuid4().hex[:6]}\\", f"tok-{uuid.uuid4().hex}"
    ConnectionInfo("ds_sec_seen", "http", login="me", password=password, extra={"nested": {"api_token": token}})
    text = f"GET failed: Authorization: {token} dsn password='{password.replace(chr(92), chr(92) * 2)}'"
    clean = scrub_known(text)
    assert token not in clean and password not in clean and clean.count("***") == 2, clean


# ---------------------------------------------------------------- real databases


def _pg_admin():
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True,
                           connect_timeout=5)


@pytest.fixture(scope="module")
def pg_role():
    """A database with one table and a role per password (trust auth: the password is never checked)."""
    import psycopg
    from psycopg import sql

    try:
        admin = _pg_admin()
    except psycopg.Error as exc:
        need(False, f"PostgreSQL on 127.0.0.1:5432: {exc}")
    tag = uuid.uuid4().hex[:8]
    db, roles = f"ds_sec_{tag}", [f"ds_sec_{tag}_{i}" for i in range(len(PASSWORDS))]
    admin.execute(f"CREATE DATABASE {db}")
    for role, password in zip(roles, PASSWORDS):
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        admin.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(role)))
    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=db, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int, at timestamptz)")
        c.execute("INSERT INTO t VALUES (1, '2025-03-01 10:00+00')")
        c.execute("GRANT SELECT ON t TO PUBLIC")
    try:
        yield db, dict(zip(PASSWORDS, roles))
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for role in roles:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _extract(info: ConnectionInfo, source: dict):
    pipeline = Pipeline.model_validate({
        "dag_id": "ds_secrets", "start_date": "2025-01-01",
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": info.conn_id, **source},
                   "target": {"schema": "raw", "table": "t"}}]})
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    return run_step(pipeline, "extract", start, start + timedelta(days=1),
                    resolver=lambda c: info if c == info.conn_id else env_resolver(c))


def _scanner_sees_a_table(monkeypatch):
    """psycopg reads the catalog and the plan before DuckDB attaches (and its errors never echo the DSN): pretend
    it found the table, so that DuckDB's ATTACH is what meets the wrong database and echoes the libpq string."""
    from dagspec.sources import postgres

    monkeypatch.setattr(postgres, "probe", lambda *a: postgres.Probe(
        "public", [postgres.Column("id", "int4", -1)], (), "parallel"))


@pytest.mark.parametrize("secret", PASSWORDS, ids=IDS)
def test_duckdb_attach_error_through_the_postgres_scanner_leaks_no_form(pg_role, data_home, monkeypatch, secret):
    db, roles = pg_role
    _scanner_sees_a_table(monkeypatch)
    info = ConnectionInfo("ds_sec_pg", "postgres", "127.0.0.1", 5432, roles[secret], secret, db + "_missing")
    with pytest.raises(StepFailed) as err:
        _extract(info, {"table": "t"})
    message = str(err.value)
    assert "'ds_sec_pg'" in message and "does not exist" in message and "***" in message, message
    assert_clean(message, secret, roles[secret])


@pytest.mark.parametrize("secret", PASSWORDS, ids=IDS)
@pytest.mark.parametrize("failure", ["wrong-db", "wrong-port"])
def test_copy_and_catalog_errors_leak_no_form(pg_role, data_home, secret, failure):
    db, roles = pg_role
    port, dbname = (5432, db + "_missing") if failure == "wrong-db" else (1, db)
    info = ConnectionInfo("ds_sec_pg", "postgres", "127.0.0.1", port, roles[secret], secret, dbname)
    for source in ({"query": "SELECT * FROM t WHERE at >= :from_date"}, {"table": "t"}):
        with pytest.raises(StepFailed) as err:
            _extract(info, source)
        assert "'ds_sec_pg'" in str(err.value)
        assert_clean(str(err.value), secret, roles[secret])


@pytest.fixture(scope="module")
def my_user():
    import pymysql

    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True,
                                connect_timeout=5)
    except pymysql.Error as exc:
        need(False, f"MariaDB on 127.0.0.1:3306: {exc}")
    user = f"ds_sec_{uuid.uuid4().hex[:8]}"
    db = user
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id int, span time)")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, '01:00:00')")
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", [user, PASSWORDS[0]])
        cur.execute(f"GRANT SELECT ON {db}.* TO %s@'%%'", [user])
    try:
        yield db, user
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute("DROP USER IF EXISTS %s@'%%'", [user])
        admin.close()


@pytest.mark.parametrize("secret", PASSWORDS, ids=IDS)
def test_mysql_paths_leak_no_form(my_user, data_home, secret):
    """The text-protocol reader, DuckDB's mysql scanner (a TIME column) and SQLAlchemy (query mode), each
    with a wrong password (only PASSWORDS[0] is right) or a wrong database."""
    db, user = my_user
    for login, schema in ((user, db + "_missing"), ("root", db)):
        info = ConnectionInfo("ds_sec_my", "mysql", "127.0.0.1", 3306, login, secret, schema)
        for source in ({"table": "t", "columns": ["id"]}, {"table": "t"}, {"query": "SELECT * FROM t"}):
            try:
                _extract(info, source)
            except StepFailed as exc:
                assert "'ds_sec_my'" in str(exc)
                assert_clean(str(exc), secret, login)
            else:  # root has no password here: MariaDB may take any for it
                assert login == "root"


# ---------------------------------------------------------------- `dagspec run`: stderr and the run record

CLI = """
import sys
from dagspec.sources import postgres
postgres.probe = lambda *a: postgres.Probe("public", [postgres.Column("id", "int4", -1)], (), "parallel")
from dagspec.cli import app
sys.argv = ["dagspec", *sys.argv[1:]]
app()
"""


@pytest.mark.parametrize("secret", [PASSWORDS[0], PASSWORDS[1], PASSWORDS[4]], ids=["all-specials", "quote-backslash",
                                                                                    "unicode"])
def test_dagspec_run_writes_no_form_to_stderr_or_the_run_record(pg_role, data_home, tmp_path, secret):
    db, roles = pg_role
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "ds_secrets_cli.json").write_text(json.dumps({
        "dag_id": "ds_secrets_cli", "start_date": "2025-01-01", "schedule": "@daily",
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": "ds_sec_cli", "table": "t"},
                   "target": {"schema": "raw", "table": "t"}}]}))
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": roles[secret],
            "password": secret, "schema": db + "_missing"}
    env = {**os.environ, "DAGSPEC_HOME": str(data_home), "DAGSPEC_DEFINITIONS": str(folder),
           "AIRFLOW_CONN_DS_SEC_CLI": json.dumps(conn), "COLUMNS": "10000",  # no wrapping: a split form would hide
           "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", CLI, "run", "ds_secrets_cli", "--date", "2025-03-01", "-v"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Unable to connect to Postgres" in output and "***" in output, output[-3000:]
    assert_clean(output, secret, roles[secret])
    records = list((data_home / "store" / "_runs").rglob("*.json"))
    assert records, "no run record written"
    for record in records:
        text = record.read_text()
        assert json.loads(text)["state"] == "failed"
        assert_clean(text, secret, roles[secret])


# ---------------------------------------------------------------- a real Airflow task's log

AIRFLOW_RUN = """
import sys
from datetime import datetime, timezone
from dagspec.sources import postgres
postgres.probe = lambda *a: postgres.Probe("public", [postgres.Column("id", "int4", -1)], (), "parallel")
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["ds_secrets_airflow"]
run = dag.test(logical_date=datetime(2025, 3, 2, tzinfo=timezone.utc))
print("RUN STATE", run.state)
"""


@pytest.mark.e2e
def test_an_airflow_tasks_log_holds_no_form(pg_role, airflow_db, dags_folder, data_home):
    """dag.test() runs the task in Airflow's task runner: its log (stdout here, and any log file) gets the
    exception Airflow prints and what the task logs; Airflow's masker and dagspec's scrub both apply."""
    db, roles = pg_role
    secret = PASSWORDS[0]
    (dags_folder / "definitions" / "ds_secrets_airflow.json").write_text(json.dumps({
        "dag_id": "ds_secrets_airflow", "start_date": "2025-01-01", "schedule": "@daily", "retries": 0,
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": "ds_sec_af", "table": "t"},
                   "target": {"schema": "raw", "table": "t"}}]}))
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": roles[secret],
            "password": secret, "schema": db + "_missing"}
    env = {**os.environ, "DAGSPEC_HOME": str(data_home), "AIRFLOW_CONN_DS_SEC_AF": json.dumps(conn),
           "COLUMNS": "10000", "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", AIRFLOW_RUN, str(dags_folder)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    output = done.stdout + done.stderr
    assert "RUN STATE failed" in output, output[-3000:]
    assert "Unable to connect to Postgres" in output, output[-3000:]
    logs = [p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log") if p.is_file()]
    assert_clean(output + "\n".join(logs), secret, roles[secret])
