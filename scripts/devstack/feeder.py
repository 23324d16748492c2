"""Keep a running demo's sample source ahead of its runs, so a stack left up for days stays green.

The sample ends yesterday when the stack starts; the next midnight makes today the new yesterday, and its
scheduled runs need that whole day of orders already there. So the sample is extended through tomorrow (UTC) at
start and again each day at midday: never at midnight, when the day's runs read the source.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack.layout import BIN, say

MIDDAY = range(6, 18)  # the UTC hours a daily extension may run in
RETRY_S = 600


class SampleFeeder:
    """Extends the sample through tomorrow at the first call and once a day at midday after it; nothing when the
    tests pin the sample's window (DAGSPEC_SAMPLE_END)."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log = env, log
        self.fed: str | None = None  # the UTC day of the last successful extension
        self.enabled = not os.environ.get("DAGSPEC_SAMPLE_END")
        self.retry_at = 0.0  # monotonic time before which a failed extension is not tried again

    def feed(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        day = now.date().isoformat()
        if not self.enabled or self.fed == day or (self.fed is not None and now.hour not in MIDDAY) \
                or time.monotonic() < self.retry_at:
            return
        through = (now.date() + timedelta(days=1)).isoformat()
        with self.log.open("a") as out:
            code = subprocess.call([str(BIN / "dagspec"), "sample-data", "--extend", "--end", through], env=self.env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)
        if code == 0:
            self.fed = day
        else:  # one failed extension must not stop the stack: tried again later
            self.retry_at = time.monotonic() + RETRY_S
            say(f"extending the sample data failed (exit {code}); trying again in {RETRY_S // 60} minutes; see {self.log}")
