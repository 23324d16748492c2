from dagspec.spec.expectation_types import known_types


def test_expectation_list_matches_installed_great_expectations():
    import great_expectations
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    installed = sorted(n for n in list_registered_expectation_implementations() if n.startswith("expect_"))
    assert list(known_types()) == installed, (
        f"GX {great_expectations.__version__}: run scripts/gen_expectation_types.py"
    )


def test_argument_description_matches_installed_great_expectations():
    """gx_expectation_args.json is what scripts/gen_expectation_types.py derives from GX's classes today."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_expectation_types", root / "scripts" / "gen_expectation_types.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.ARGS_OUT.read_text() == gen.render(gen.current_args()), (
        "GX's expectation classes changed: run scripts/gen_expectation_types.py")
