"""The audit log: who changed what, from what to what, and when (`record` in every service that changes data)."""

from app.audit.models import AuditEntry
from app.audit.services import record

__all__ = ["AuditEntry", "record"]
