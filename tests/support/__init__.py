"""Test support: fixtures (registered in tests/conftest.py through pytest_plugins) and helpers."""
