"""Errors raised by the TUF repository core."""


class RepositoryError(Exception):
    """Base class: the repository refused an operation."""


class NotInitializedError(RepositoryError):
    """The repository has no published root yet (run `manage.py tuf_init`)."""


class AlreadyInitializedError(RepositoryError):
    """An initial root is already published; rotate instead of re-initialising."""


class ThresholdNotMetError(RepositoryError):
    """Staged metadata does not yet carry enough valid signatures to be published."""


class StagingMismatchError(RepositoryError):
    """Imported metadata does not match the staged version it claims to sign."""


class OfflineSignatureRequiredError(RepositoryError):
    """A role signed by offline keys changed; it must be exported, signed and imported."""


class PublishedFileExistsError(RepositoryError):
    """A versioned metadata file is already published; published files are never overwritten."""
