"""Tables that fit the terminal they are printed on, however narrow, without cutting a header or a value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


class FittingTable(Table):
    """A Rich table that, when even its narrowest layout is wider than the terminal (Rich would then cut the
    last columns: 'stat…'), prints each row as a block of 'header  value' lines instead: every header and
    every value is still there, folded onto more lines."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # Table's own measure, not Measurement.get: that one clamps the minimum to the width it is given.
        if not self.columns or self.__rich_measure__(console, options).minimum <= options.max_width:
            yield from super().__rich_console__(console, options)
            return
        if self.title:
            yield Text.from_markup(self.title, style="table.title") if isinstance(self.title, str) else self.title
        cells = [list(column.cells) for column in self.columns]
        for row in range(self.row_count):
            block = Table.grid(padding=(0, 2))
            block.add_column(style="bold", overflow="fold", max_width=max(8, options.max_width // 3))
            block.add_column(overflow="fold")
            for column, values in zip(self.columns, cells):
                block.add_row(column.header, values[row])
            if row:
                yield Text("")
            yield block


def fitting_table(*headers: str, right: tuple[str, ...] = (), **options: Any) -> FittingTable:
    """A table whose headers are never cut ('stat…') and whose columns never vanish on a narrow terminal:
    each column is at least its header's longest word wide, long values fold onto more lines, and a table too
    wide for the terminal prints row by row (FittingTable)."""
    table = FittingTable(**options)
    for header in headers:
        # As Text: a header may be a table's column name, which is data, not Rich markup.
        table.add_column(
            Text(header),
            min_width=max((len(w) for w in header.split()), default=1),
            overflow="fold",
            justify="right" if header in right else "left",
        )
    return table
