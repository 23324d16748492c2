"""`dagspec import`: the seed DAG creator's JSON files -> dagspec definitions and SQL files, checked first."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import typer

from dagspec.cli.common import plain_err as err
from dagspec.cli.common import plain_out as out


def import_seeds(
    files: list[Path] = typer.Argument(..., help="Seed definition files (JSON)."),
    definitions: Path | None = typer.Option(None, "--definitions", help="Where to write definitions "
                                               "(default: dags/definitions, or $DAGSPEC_DEFINITIONS)."),
    sql: Path | None = typer.Option(None, "--sql-dir", help="SQL folder (default: include/sql, or $DAGSPEC_SQL_DIR)."),
    force: bool = typer.Option(False, "--force", help="Replace a definition or SQL file that exists already."),
    inline: bool = typer.Option(False, "--inline", help="Keep the SQL inside the definition (a drop that carries "
                                "its own SQL) instead of writing a SQL file."),
) -> None:
    """Write an equivalent dagspec definition (and SQL file) for each seed file, report every field not carried
    over and why, and print the backfill command that replaces back_date_from."""
    from dagspec.paths import definitions_dir, sql_dir
    from dagspec.seed_import import SeedError, dumps, import_seed
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.load import parse_definition

    definitions = definitions or definitions_dir()
    sql = sql or sql_dir()
    failed = 0
    for path in files:
        try:
            seed = json.loads(path.read_text(encoding="utf-8-sig"))
            done = import_seed(seed, inline=inline)
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # SeedError and JSONDecodeError are ValueErrors
            message = str(exc) if isinstance(exc, SeedError) else f"$: cannot read it as JSON: {exc}"
            err.print(f"{path}: {message}")
            failed += 1
            continue
        target = definitions / f"{done.definition['dag_id']}.json"
        sql_file = sql / done.sql_path
        clash = [p for p in (target, *([] if inline else [sql_file])) if p.exists()] if not force else []
        if clash:
            err.print(f"{path}: {', '.join(map(str, clash))} exists already (fix: pass --force to replace it)")
            failed += 1
            continue
        text = dumps(done.definition)
        with tempfile.TemporaryDirectory() as scratch:  # the pair is checked together before either goes live
            (Path(scratch) / done.sql_path).parent.mkdir(parents=True)
            (Path(scratch) / done.sql_path).write_text(done.sql)
            try:
                parse_definition(text.encode(), str(target), sql_dir=Path(scratch))
            except DefinitionError as exc:
                err.print(f"{path}: the converted definition is not valid:\n{exc}")
                failed += 1
                continue
        if not inline:
            _write(sql_file, done.sql)
        _write(target, text)
        out.print(f"{path} -> {target}" + ("" if inline else f" + {sql_file}"))
        for note in done.notes:
            out.print(f"  {note}")
        if done.backfill:
            out.print(f"  replaces back_date_from: {done.backfill}")
    raise typer.Exit(1 if failed else 0)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden: the loader skips it until it is renamed
    tmp.write_text(text)
    os.replace(tmp, path)
