"""The one error type that leaves the services: a refusal with an HTTP status, a short machine code, a message and
JSON-ready details (for invalid input: field -> message).

Services raise it or a subclass that fixes `status` and `code` (upgrades.TagInvalid, instances.InstanceError,
rollouts.RolloutConflict...). Nobody translates it: each edge decides once how it looks - the API as its JSON error
shape (ccp.api.errors), the UI as the error partial (ccp.web.errors) unless a page shows the refusal in place (a
form's fields, the release dialog).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refused or could not carry out; nothing half-done was committed.

    `status` is the HTTP status it answers with, `code` a short string clients match on (docs/api.md "Errors")."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict | None = None, *, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
