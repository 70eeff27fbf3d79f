"""The admin's pages: the dashboard (figures, charts, every ticket, export) and the settings."""
