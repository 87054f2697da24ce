"""The ways training stops early that a person must fix; the CLI prints the message as one sentence, exit code 2."""


class TrainError(Exception):
    """Base of the errors below."""


class DataError(TrainError):
    """A data file is missing or corrupt; the message names the file and the fix."""


class CheckpointError(TrainError):
    """A checkpoint is missing, unreadable, or not one that `mnist-edge train` wrote."""


class ConfigError(TrainError):
    """The recipe or the device asked for cannot be used here."""
