"""Pieces shared by the writes that do their whole change in one statement (a ticket, a message).

Such a write knows its whole response before the statement runs but one number Postgres draws
(a ticket's `number`, a message's `seq`). So the body is made in Python with a stand-in for that
number, split around it, and the statement splices the drawn number in: the Idempotency-Key's
stored response (`claim_in_sql`) and the body sent are the same bytes, with no second trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from psycopg.types.json import Jsonb

STAND_IN = -1  # the number written in the body before Postgres draws the real one


@dataclass(frozen=True)
class Spliced:
    """A JSON body split around the one number the statement draws."""

    head: bytes
    tail: bytes

    @classmethod
    def around(cls, body: bytes, field: str) -> Spliced:
        """Split `body`, made with `STAND_IN` as `field`, before and after that number."""
        marker = b'"%s":%d' % (field.encode(), STAND_IN)
        head, found, tail = body.partition(marker)
        assert found and marker not in tail, "the stand-in appears once, as the field's value"
        return cls(head + marker[:-len(str(STAND_IN))], tail)

    def params(self) -> dict[str, bytes]:
        """Return the bind parameters `sql` reads."""
        return {"body_head": self.head, "body_tail": self.tail}

    @staticmethod
    def sql(number: sa.ColumnElement[int]) -> sa.ColumnElement[bytes]:
        """Return the body's bytes with `number` (an expression of the statement) spliced in."""
        return (sa.bindparam("body_head", type_=sa.LargeBinary)
                .op("||")(sa.func.convert_to(sa.cast(number, sa.Text), "UTF8"))
                .op("||")(sa.bindparam("body_tail", type_=sa.LargeBinary)))

    def with_number(self, number: int) -> bytes:
        """Return the body with the drawn `number`, as `sql` writes it."""
        return self.head + str(number).encode() + self.tail


def jsonb(value: Any) -> Jsonb:
    """Return `value` as a JSONB parameter written by orjson (ids and times as their strings); bytes are
    taken as JSON already written."""
    return Jsonb(value, dumps=_as_json)


def _as_json(value: Any) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)
