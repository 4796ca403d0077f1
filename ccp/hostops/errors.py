"""Errors raised by host operations; each carries the HTTP status and short code the agent answers with."""
from __future__ import annotations


class HostOpsError(Exception):
    """Base class: ``status`` is the HTTP status, ``code`` a short machine-readable string.

    Messages never contain .env values or file contents, so they are safe to return to CCP and to log.
    """

    status = 500
    code = "host_error"

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict:
        """Return the JSON error body ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class PathRefused(HostOpsError):
    """A path is absolute, contains ``..``/NUL, is reserved, or leads outside the install dir."""

    status, code = 400, "path_refused"


class BadRequest(HostOpsError):
    """Malformed input (wrong types, bad key names, values .env cannot hold)."""

    status, code = 400, "bad_request"


class NotFound(HostOpsError):
    """Unknown instance, snapshot or script."""

    status, code = 404, "not_found"


class ExpectationFailed(HostOpsError):
    """An ``expect_sha256`` did not match what is on disk; nothing was written."""

    status, code = 409, "expectation_failed"


class FenceRejected(HostOpsError):
    """The fence token is older than the newest seen for this instance."""

    status, code = 409, "fence_rejected"


class Busy(HostOpsError):
    """Another mutation holds this instance's lock."""

    status, code = 409, "busy"


class TooLarge(HostOpsError):
    """Body, file or file-count limit exceeded."""

    status, code = 413, "too_large"


class WriteFailed(HostOpsError):
    """The host could not write (disk full, I/O error); originals were kept."""

    status, code = 507, "write_failed"


class ComposeUnavailable(HostOpsError):
    """Neither ``docker compose`` nor ``docker-compose`` can be run on this host."""

    status, code = 503, "compose_unavailable"
