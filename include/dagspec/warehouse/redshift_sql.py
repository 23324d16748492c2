"""SQL a user wrote that dagspec sends to Redshift as it is (post-load statements), read by sqlglot's Redshift
dialect before the load starts: no cluster checks it for us here, so a typo fails before any row moves.

sqlglot falls back to an opaque Command for what it cannot read; only ALTER ... OWNER TO (which its Redshift
dialect does not model) is accepted that way: any other statement it cannot read is refused.
"""

from __future__ import annotations

DIALECT = "redshift"


def redshift_problem(sql: str) -> str | None:
    """Why `sql` is not one statement sqlglot's Redshift dialect reads, or None."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except Exception as exc:  # ParseError, TokenError and, on odd input, others
        text = str(exc).strip()
        return f"sqlglot's Redshift dialect cannot read it: {text.splitlines()[0] if text else type(exc).__name__}"
    if len(statements) != 1:
        return f"it holds {len(statements)} statements; give one per entry"
    tree = statements[0]
    if isinstance(tree, exp.Command) and not (tree.name.upper() == "ALTER" and "OWNER TO" in sql.upper()):
        return "sqlglot's Redshift dialect cannot read it (fix the statement's syntax)"
    return None
