"""The ways a service refuses, in the product's words; each caller kind maps them once.

Services raise these and never speak HTTP. The API maps them to its JSON error body
(`app.http_errors`), pages to a message beside the form or an error page, socket handlers to an
error event on the socket, and jobs to a failed job with the message recorded.
"""

from __future__ import annotations

# At most this many fields are named in one refusal: a 1 MB body of bad list items was answered with
# 19 MB of errors, one for each.
MAX_FIELD_ERRORS = 20


class DomainError(Exception):
    """A refusal with a message for people and, for invalid input, messages per field."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Malformed(DomainError):
    """The input cannot be read at all (a truncated or garbled body), as opposed to read and refused."""


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it does."""


class Forbidden(DomainError):
    """The caller's role may not do this."""


class Conflict(DomainError):
    """The change clashes with the current state (a taken name, a closed ticket); the message says why."""


class Invalid(DomainError):
    """The input is well-formed but not acceptable; `errors` names the fields."""

    @classmethod
    def field(cls, name: str, message: str, summary: str | None = None) -> Invalid:
        """Return the error for one field."""
        return cls(summary or message, {name: [message]})


class Gone(DomainError):
    """The thing existed but will never be available again (a file refused by its scan)."""


class TooLarge(DomainError):
    """The input is bigger than a limit allows (a file over the size limit, a full storage quota)."""


class UnsupportedType(DomainError):
    """The input is of a type that is not accepted here (a file type outside the allowed list)."""


class Stale(DomainError):
    """The caller changed a version it had read, and it has moved on since (`current` is the new one)."""

    def __init__(self, message: str, current: str) -> None:
        super().__init__(message)
        self.current = current


class Unavailable(DomainError):
    """A dependency cannot answer now; the caller may retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def being_moved() -> Unavailable:
    """The refusal of a request that met its organization's schema fenced or gone for a move to another shard."""
    return Unavailable("The organization is being moved; try again shortly.")
