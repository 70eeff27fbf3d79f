"""A conversation as threads one level deep: each top-level message with every reply under it.

A reply to a reply belongs to the same thread (shown under its root, in seq order), as in Help
Scout or Slack; deeper nesting makes a narrow screen unreadable. A reply whose parent the viewer
cannot see (deleted) or that is older than the page shows is a thread of its own. A reply to an
internal note is a note too, so a requester never sees a note's id as a parent. The page's
script places live messages by the same rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from app.conversation.models import Message

# Replies shown at once; earlier ones fold behind "Show N earlier replies".
VISIBLE_REPLIES = 2


@dataclass
class Thread:
    root: Message
    replies: list[Message] = field(default_factory=list)

    @property
    def folded(self) -> list[Message]:
        return self.replies[:-VISIBLE_REPLIES] if len(self.replies) > VISIBLE_REPLIES else []

    @property
    def shown(self) -> list[Message]:
        return self.replies[-VISIBLE_REPLIES:] if len(self.replies) > VISIBLE_REPLIES else self.replies


def threads_of(messages: list[Message]) -> list[Thread]:
    """Group messages (in seq order) into threads, each under its top-level message."""
    threads: list[Thread] = []
    root_of: dict[uuid.UUID, Thread] = {}
    for message in messages:
        thread = root_of.get(message.parent_id) if message.parent_id is not None else None
        if thread is None:
            thread = Thread(message)
            threads.append(thread)
        else:
            thread.replies.append(message)
        root_of[message.id] = thread
    return threads
