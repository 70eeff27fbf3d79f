"""Tickets: creation, numbering, lifecycle, listing, search and export."""
