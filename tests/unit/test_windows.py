from datetime import UTC, date, datetime

import pendulum

from dagspec.spec.schedule import window_for
from dagspec.windows import Window, utc

UTC = UTC


def test_daily_window_and_cron_with_hour():
    assert window_for("@daily", date(2025, 3, 1)) == (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    assert window_for("0 2 * * *", date(2025, 3, 1)) == (
        datetime(2025, 3, 1, 2, tzinfo=UTC), datetime(2025, 3, 2, 2, tzinfo=UTC))
    assert window_for("@monthly", date(2025, 3, 1))[1] == datetime(2025, 4, 1, tzinfo=UTC)


def test_batch_days_cut_a_long_window_exactly():
    w = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 8, tzinfo=UTC))
    cuts = w.batches(3)
    assert [b.batch_date for b in cuts] == [date(2025, 1, 1), date(2025, 1, 4), date(2025, 1, 7)]
    assert cuts[-1].to_at == w.end and cuts[0].to_at == cuts[1].from_at


def test_pendulum_values_from_airflow_become_plain_utc():
    start = utc(pendulum.datetime(2025, 3, 1, tz="Europe/Berlin"))
    assert type(start) is datetime and start == datetime(2025, 2, 28, 23, tzinfo=UTC)
    w = Window(utc(pendulum.datetime(2025, 3, 1, tz="UTC")), utc(pendulum.datetime(2025, 3, 3, tz="UTC")))
    assert len(w.batches(1)) == 2
