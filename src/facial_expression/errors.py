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


# Where the user reads messages: "cli" (a terminal) or "notebook" (Jupyter, Colab, Kaggle); the notebooks'
# environment cell sets it, so that advice names what the reader can change there (a parameter, not a flag).
_WHERE = {"where": "cli"}


def set_where(where: str) -> None:
    """Say where messages are read: 'cli' or 'notebook'."""
    _WHERE["where"] = where


def in_notebook() -> bool:
    """Whether messages are read in a notebook (set by its environment cell)."""
    return _WHERE["where"] == "notebook"


def error_line(e: BaseException, command: str | None = None) -> str:
    """The one line an expected error shows, in the CLI (`fer train: error: ...`) and in notebooks (`fer: error:
    ...`, through the IPython handler that the environment cell sets)."""
    return f"fer{' ' + command if command else ''}: error: {e}"
