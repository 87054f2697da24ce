"""The two ways an export stops early; the CLI turns each into one sentence and an exit code."""


class BadInput(Exception):
    """The checkpoint, the data or the output folder cannot be used (exit code 2)."""


class CheckFailed(Exception):
    """The model was built but failed a check, the accuracy gate among them (exit code 1)."""
