"""Public events: what integrators receive by webhook and read from the event feed.

The catalogue below is the whole list; every other topic the outbox carries is internal. Each
public event's `data` is the resource as the transaction that caused it left it.
"""

from __future__ import annotations

EVENT_TYPES = {
    "ticket.created": "A ticket was opened. `data.ticket` is the new ticket.",
    "ticket.assigned": "A ticket got an assignee, by a rule or by hand. `data.ticket`, `data.source` "
                       "(`auto` or `manual`).",
    "ticket.updated": "A ticket changed (or was reopened). `data.ticket`, `data.changes` (the field names).",
    "ticket.closed": "A ticket was closed. `data.ticket`.",
    "message.created": "A message was posted. `data.message`; `data.message.internal` marks a note "
                       "for staff, sent only to webhooks with `include_internal`.",
    "attachment.updated": "An attachment was uploaded or its scan finished. `data.attachment`.",
    "attachment.deleted": "An attachment was deleted by its uploader or an admin; its file is gone. "
                          "`data.attachment` as it was.",
}
