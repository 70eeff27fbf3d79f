"""API keys of a tenant: created (shown once), listed (never shown again), revoked."""
