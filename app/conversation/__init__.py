"""Conversation on a ticket: messages, threads, internal notes, live streams."""
