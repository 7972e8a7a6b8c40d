"""Exceptions raised by mlcore. Each message says what was wrong and how to fix it."""


class MlcoreError(Exception):
    """Base class for every error mlcore raises on purpose.

    ``exit_code`` is what the command line exits with: 2 for input (data, settings,
    arguments) unless a subclass says otherwise.
    """

    exit_code = 2


class DataError(MlcoreError):
    """Data could not be read or does not match its dataset spec."""


class ConfigError(MlcoreError):
    """A settings file or an argument is invalid."""


class ModelError(MlcoreError):
    """A model directory is missing, incomplete or incompatible."""


class RegistryError(MlcoreError):
    """A model registry operation is not allowed in the registry's current state."""


class TrackingError(MlcoreError):
    """Logging a run to the MLflow tracking server or store failed."""


class OutputError(MlcoreError):
    """An output folder could not be written (a full disk, no permission); nothing partial is left."""


class GateFailed(MlcoreError):
    """A model did not pass the quality gate; the command line exits 3."""

    exit_code = 3
