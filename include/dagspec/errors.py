"""Run-time errors shared by sources, stores, warehouses and stages."""


class StepFailed(RuntimeError):
    """A step failed for a reason the user can act on; the message says which and how."""
