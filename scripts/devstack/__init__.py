"""The parts of scripts/dev_stack.py, one job each."""
