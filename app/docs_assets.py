"""Serve Swagger UI's files from the swagger-ui-bundle wheel, so `/api/v1/docs` needs no CDN."""

from __future__ import annotations

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path


def init_app(app: Flask) -> None:
    @app.get("/api/v1/docs/assets/<path:filename>")
    def swagger_ui_asset(filename: str):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
