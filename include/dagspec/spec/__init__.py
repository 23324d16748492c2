"""The definition: model, loading with precise errors, and the published JSON Schema."""

from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.load import load_definition, parse_definition
from dagspec.spec.model import Pipeline

__all__ = ["DefinitionError", "Pipeline", "Problem", "load_definition", "parse_definition"]
