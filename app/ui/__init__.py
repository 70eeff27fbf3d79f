"""Server-rendered pages of a tenant."""
