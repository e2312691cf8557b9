"""Expected errors: the CLI prints these as one line, without a traceback."""


class FERError(Exception):
    """Base class for errors a user can fix (bad data, missing weights, bad arguments)."""


class DataError(FERError):
    """The dataset is missing or laid out wrongly."""


class WeightsUnavailableError(FERError):
    """Pretrained weights were asked for but cannot be had."""


class NonFiniteLossError(FERError):
    """Training diverged: the loss became NaN or infinite."""


class ConfigError(FERError, ValueError):
    """A setting has a value outside its choices (also a ValueError, for callers that catch that)."""
