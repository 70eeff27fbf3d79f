"""Who is asking: API keys, UI sessions, roles and rate limits."""
