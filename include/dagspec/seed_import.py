"""The seed DAG creator's JSON -> a dagspec definition and its SQL file, with every field accounted for.

The seed ran one Redshift query per window: it truncated `{schema}.{table_name}` (a staging table),
inserted the window's rows with `{from_date}`/`{to_date}` pasted into the text, unloaded them to
`s3://bucket/<schema>/<table>/batch_date=YYYY-MM-DD/` and loaded the final table. In dagspec that is a
transform (the SELECT, window bound as :from_date/:to_date, the batch replaced in one transaction)
and a publish of the same batch as Parquet partitions at that layout. The SQL is rewritten through
sqlglot's Redshift dialect, never by pasting: placeholders become bound parameters or the names the
seed file gave, and the TRUNCATE/INSERT around the SELECT goes (dagspec replaces the batch itself).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dagspec.spec.schedule import check_schedule

SEED_FIELDS = ("query", "schema", "table_name", "table_columns", "start_date", "back_date_from", "batch_size", "dag_id",
               "schedule_interval", "template_location_in_ec2", "dag_folder")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_WINDOW = re.compile(r"'?\{(from_date|to_date)\}'?")


class SeedError(ValueError):
    """The seed file cannot become a definition; the message names the field and the fix."""


@dataclass
class Imported:
    definition: dict[str, Any]
    sql: str
    sql_path: str  # relative to the SQL folder
    notes: list[str] = field(default_factory=list)  # one line per field not carried over as it was, and why
    backfill: str | None = None  # the command that replaces back_date_from


def import_seed(seed: dict[str, Any], *, inline: bool = False) -> Imported:
    """One seed definition -> an equivalent dagspec definition (its SQL in a file, or ``inline`` in the
    definition); SeedError when a field cannot be converted."""
    if not isinstance(seed, dict):
        raise SeedError("$: the seed file is not a JSON object")
    for key in ("dag_id", "schema", "table_name", "query", "start_date"):
        if not isinstance(seed.get(key), str) or not seed[key].strip():
            raise SeedError(f"$.{key}: required text field is missing or empty")
    schema, table, dag_id = seed["schema"], seed["table_name"], seed["dag_id"]
    for key, value in (("schema", schema), ("table_name", table)):
        if not _NAME.match(value):
            raise SeedError(f"$.{key}: {value!r} is not a plain identifier (letters, digits, '_')")
    notes: list[str] = []
    sql = _convert_query(seed["query"], schema, table, notes)
    step_id = f"load_{table}"
    sql_path = f"imported/{_file_safe(dag_id)}.sql"
    definition: dict[str, Any] = {
        "dag_id": dag_id,
        "description": f"Imported from the seed DAG creator's definition of {schema}.{table}.",
        "schedule": _schedule(seed.get("schedule_interval")),
        "start_date": _date(seed["start_date"], "start_date"),
        "steps": [
            {"id": step_id, "kind": "transform", **({"query": sql} if inline else {"sql": sql_path}),
             "dialect": "redshift", "target": {"schema": schema, "table": table}},
            {"id": f"publish_{table}", "kind": "publish", "input": step_id,
             "export": {"format": "parquet", "target": {"schema": schema, "table": table}}},
        ],
    }
    _check_columns(seed.get("table_columns"), sql, notes)
    backfill = None
    if seed.get("back_date_from") not in (None, ""):
        first = _date(seed["back_date_from"], "back_date_from")
        backfill = f"dagspec backfill {dag_id} --from {first} --to {date.today().isoformat()} --reprocess"
        notes.append("back_date_from: not carried over: the seed wiped and reloaded from that date on every run until "
                     "someone reset it; in dagspec reprocessing is an explicit backfill (the command below)")
    if seed.get("batch_size") not in (None, ""):
        notes.append(f"batch_size ({seed['batch_size']!r} days per query on first runs): not carried over: each dagspec "
                     "run reads its own window; load history with the backfill command (one run per date)")
    for key in ("template_location_in_ec2", "dag_folder"):
        if key in seed:
            notes.append(f"{key}: not carried over: a deployment path of the seed; dagspec reads definitions from its "
                         "definitions folder and SQL from its SQL folder")
    unknown = sorted(set(seed) - set(SEED_FIELDS))
    if unknown:
        notes.append(f"{', '.join(unknown)}: not carried over: not fields of the seed format")
    return Imported(definition, sql, sql_path, notes, backfill)


def _convert_query(query: str, schema: str, table: str, notes: list[str]) -> str:
    """The seed's statements -> the one SELECT whose rows are the batch, in Redshift SQL with :from_date/:to_date."""
    text = query.replace("{schema}", schema).replace("{table_name}", table)
    # The seed pasted dates ('YYYY-MM-DD') whatever hour its cron fired; a dagspec window runs from fire time to
    # fire time, so the dates of its edges give the seed's calendar-day window exactly.
    text = _WINDOW.sub(lambda m: f"CAST(:{m.group(1)} AS DATE)", text)
    leftover = re.findall(r"\{[A-Za-z_]+\}", text)
    if leftover:
        raise SeedError(f"$.query: unknown placeholder(s) {', '.join(sorted(set(leftover)))}; the seed format has "
                        "{schema}, {table_name}, {from_date}, {to_date}")
    try:
        statements = [s for s in sqlglot.parse(text, read="redshift") if s is not None]
    except SqlglotError as exc:
        raise SeedError(f"$.query: sqlglot cannot read it as Redshift SQL: {str(exc).splitlines()[0]}") from None
    selects = []
    for statement in statements:
        if isinstance(statement, (exp.TruncateTable, exp.Delete)) and _targets(statement, schema, table):
            verb = "TRUNCATE" if isinstance(statement, exp.TruncateTable) else "DELETE"
            notes.append(f"query: the {verb} of {schema}.{table} is dropped: dagspec replaces "
                         "the batch itself in one transaction")
            continue
        if isinstance(statement, exp.Insert) and _targets(statement, schema, table):
            selects.append(_insert_select(statement))
            continue
        if isinstance(statement, exp.Query) and not selects:
            selects.append(statement)
            continue
        raise SeedError(f"$.query: cannot carry over the statement {statement.sql('redshift')[:80]!r}; a dagspec "
                        "transform is one SELECT (put other work in its own transform)")
    if len(selects) != 1:
        raise SeedError(f"$.query: expected one INSERT INTO {schema}.{table} ... SELECT, found {len(selects)}")
    select = selects[0]
    dropped = [p for p in select.selects if p.alias_or_name.lower() == "batch_date"]
    for projection in dropped:  # dagspec adds the batch's own date
        projection.pop()
        notes.append("query: its batch_date column is dropped: dagspec adds batch_date (the batch's date) itself")
    # Redshift's generator writes parameters psycopg's way (%(from_date)s); dagspec SQL files write :from_date.
    select = select.transform(lambda n: exp.var(f":{n.name}") if isinstance(n, exp.Placeholder) and n.name else n)
    return select.sql(dialect="redshift", pretty=True) + "\n"


def _targets(statement: exp.Expression, schema: str, table: str) -> bool:
    found = statement.find(exp.Table)
    return found is not None and found.name.lower() == table.lower() and (found.db or schema).lower() == schema.lower()


def _insert_select(insert: exp.Insert) -> exp.Query:
    select = insert.expression
    if not isinstance(select, exp.Query):
        raise SeedError("$.query: the INSERT has no SELECT (VALUES cannot be a windowed batch)")
    target = insert.this
    columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
    if columns:  # the insert's column list names the SELECT's columns by position
        if len(columns) != len(select.selects):
            raise SeedError(f"$.query: INSERT names {len(columns)} columns but its SELECT gives {len(select.selects)}")
        select.set("expressions", [exp.alias_(p.unalias(), c) for p, c in zip(select.selects, columns)])
    return select


def _check_columns(table_columns: Any, sql: str, notes: list[str]) -> None:
    if table_columns is None:
        return
    names = _column_names(table_columns)
    produced = [p.alias_or_name for p in sqlglot.parse_one(sql, read="redshift").selects]
    expected = [n for n in names if n.lower() != "batch_date"]
    if "*" in produced or not expected:
        notes.append("table_columns: not checked: the query selects '*'" if "*" in produced else
                     "table_columns: not carried over: dagspec takes the table's columns from the query")
        return
    if [p.lower() for p in produced] != [e.lower() for e in expected]:
        raise SeedError(f"$.table_columns: the query gives {produced}, the seed declares {expected} (plus batch_date); "
                        "make them agree")
    notes.append("table_columns: checked against the query and not carried over: dagspec takes the table's columns "
                 "from the query")


def _column_names(table_columns: Any) -> list[str]:
    if isinstance(table_columns, dict):
        return [str(k) for k in table_columns]
    if isinstance(table_columns, str):
        table_columns = [c for c in table_columns.split(",")]
    if isinstance(table_columns, list):
        return [str(c["name"] if isinstance(c, dict) else c).split()[0] for c in table_columns if str(c).strip()]
    raise SeedError("$.table_columns: expected a list of column names")


def _schedule(value: Any) -> str | None:
    if value in (None, "", "None", "null"):
        return None
    if not isinstance(value, str):
        raise SeedError(f"$.schedule_interval: {value!r} is not a cron expression or preset")
    try:
        check_schedule(value)
    except ValueError as exc:
        raise SeedError(f"$.schedule_interval: {value!r}: {exc}") from None
    return value


def _date(value: Any, key: str) -> str:
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise SeedError(f"$.{key}: {value!r} is not a date (YYYY-MM-DD)") from None


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def dumps(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
