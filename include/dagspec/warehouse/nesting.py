"""Transactions that nest by joining: for engines without savepoints (DuckDB, Redshift).

A chunk's publish holds one transaction around all its batches, and each batch's load asks for one
too. Where the engine has no savepoints, the inner request joins the outer transaction: only the
outermost begins and ends it, so an error anywhere rolls back all of it, as one transaction should.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class JoinsNested:
    """`transaction()` for a class that says how its outermost transaction begins and ends."""

    depth = 0  # transactions open on this connection; more than one means joined

    def outermost_transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        self.depth = 1
        try:
            with self.outermost_transaction():
                yield
        finally:
            self.depth = 0
