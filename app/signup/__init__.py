"""Public signup: a new organization gets its tenant, schema, admin and first API key."""
