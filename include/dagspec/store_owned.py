"""Which objects in the store dagspec wrote itself: the one rule every delete in the store obeys.

A partition's prefix may hold files dagspec did not write: the parts of an adopted partition
(whatever Redshift UNLOAD or another tool named them), a `_SUCCESS` or `manifest` file beside them,
anything a person copied in. dagspec deletes an object only when `is_ours` says its name is one
dagspec writes (a part, a manifest, a leftover temporary of an older version); anything else stays,
byte for byte, through every re-run, sweep and stray cleanup. A re-run of an adopted date commits a
manifest naming only its own parts, so the foreign files stay in place but no reader sees them.

Because the rule goes by name, `dagspec adopt` refuses a partition holding a file named like
dagspec's own parts: after a re-run nothing could tell it from a replaced part.
"""

from __future__ import annotations

import re

MANIFEST = "_manifest.json"

# part-00000.parquet (local), part-<12 hex of the run>-00000.parquet (S3/GCS), the same as .csv or .xlsx (publish),
# and the partition temporaries older versions kept beside the partitions in the table folder.
_OURS = re.compile(
    r"_manifest\.json"
    r"|part-(?:[0-9a-f]{12}-)?\d{5}\.(?:parquet|csv|xlsx)"
    r"|_(?:tmp|old)_batch_date=\d{4}-\d{2}-\d{2}[^/]*"
)


def is_ours(name: str) -> bool:
    """True for a name (relative to its partition, or to its table folder) that dagspec writes itself.
    A name with a folder in it is never ours: partitions dagspec writes are flat."""
    return _OURS.fullmatch(name) is not None
