"""The store's own top-level folders: its temporaries, validation records and run records.

A table's schema is a folder at the same level, so a definition may not name one of these (the
definition model refuses them); kept in one place the store and the model both read.
"""

TEMP, CHECKS, RUNS = "_tmp", "_checks", "_runs"
RESERVED = frozenset((TEMP, CHECKS, RUNS))
