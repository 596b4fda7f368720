"""Errors raised by the TUF repository core; a family under the one root, `DomainError`."""

from fleet.core.errors import DomainError


class RepositoryError(DomainError):
    """Base class: the repository refused an operation."""

    code = "repository_error"
    status_code = 409


class NotInitializedError(RepositoryError):
    """The repository has no published root yet (run `manage.py tuf_init`)."""

    code = "repository_not_initialized"
    status_code = 503


class AlreadyInitializedError(RepositoryError):
    """An initial root is already published; rotate instead of re-initialising."""

    code = "repository_initialized"


class ThresholdNotMetError(RepositoryError):
    """Staged metadata does not yet carry enough valid signatures to be published."""

    code = "threshold_not_met"


class StagingMismatchError(RepositoryError):
    """Imported metadata does not match the staged version it claims to sign."""

    code = "staging_mismatch"
    status_code = 400


class PublishedFileExistsError(RepositoryError):
    """A versioned metadata file is already published; published files are never overwritten."""

    code = "published_file_exists"
