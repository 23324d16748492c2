"""Warehouses: where transforms run and published tables live."""
