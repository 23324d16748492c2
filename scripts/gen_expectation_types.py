"""Regenerate include/dagspec/spec/gx_expectation_types.json from the installed Great Expectations.

The list lets definitions be checked (and autocompleted in editors) without importing GX at
DAG parse time, which costs seconds. tests/unit/test_expectation_types.py fails when it drifts.
"""

import json
from pathlib import Path

from great_expectations.expectations.registry import list_registered_expectation_implementations

import great_expectations

OUT = Path(__file__).resolve().parents[1] / "include" / "dagspec" / "spec" / "gx_expectation_types.json"


def current_types() -> list[str]:
    return sorted(n for n in list_registered_expectation_implementations() if n.startswith("expect_"))


if __name__ == "__main__":
    OUT.write_text(json.dumps({"great_expectations": great_expectations.__version__, "types": current_types()}, indent=1) + "\n")
    print(f"wrote {OUT}")
