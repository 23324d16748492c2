"""Data checks: Great Expectations suites loaded from definitions or GX suite files, evaluated where the data is."""
