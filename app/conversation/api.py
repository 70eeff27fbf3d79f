"""REST endpoints of the conversation area."""

from __future__ import annotations

from flask_smorest import Api

from app.api_common import api_blueprint

blp = api_blueprint("conversation", "conversation")


def register(api: Api) -> None:
    api.register_blueprint(blp)
