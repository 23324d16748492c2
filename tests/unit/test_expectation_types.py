from dagspec.spec.expectation_types import known_types


def test_expectation_list_matches_installed_great_expectations():
    import great_expectations
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    installed = sorted(n for n in list_registered_expectation_implementations() if n.startswith("expect_"))
    assert list(known_types()) == installed, (
        f"GX {great_expectations.__version__}: run scripts/gen_expectation_types.py"
    )
