"""Marshmallow building blocks shared by every area's schemas."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

# The one spelling of an id we accept, as Flask's `<uuid:...>` path converter: 8-4-4-4-12 hex digits.
# Python's uuid.UUID also takes braces, `urn:uuid:` and hyphens anywhere; such lookalikes of an id
# are refused rather than read as it.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_PATTERN[1:-1], re.ASCII)


# The pages edit labels as one comma-separated text box, trimmed: a label holding a comma, a control
# character or an edge space could not be shown there and saved back as itself. Spelt out rather
# than with \s, so Python and the document's (ECMAScript) readers agree on every character.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_SPACE = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

# A name is an identity on every page that shows it: one character at least must be visible (not
# a space, a zero-width or other format character), and bidirectional embedding, override and
# isolate controls, which reorder the text around them ("Trojan Source"), are refused.
_INVISIBLE = (r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2060-\u2064"
              r"\u206a-\u206f\u2800\u3164\ufe00-\ufe0f\uffa0\ufff9-\ufffb")
_BIDI = r"\u202a-\u202e\u2066-\u2069"
# Text that must not be blank (a name, a ticket's title, a message's body) shows one such character
# at least; a body of zero-width spaces would be an empty message on every page.
VISIBLE_CHARACTER = f"[^{_CONTROL}{_SPACE}{_INVISIBLE}{_BIDI}]"
# The server also knows the invisible characters beyond the first plane (Unicode's other default-ignorable
# ones: shorthand format controls, musical format symbols, tag characters and variation selectors). The
# document's pattern leaves them out: its readers (ECMAScript without the `u` flag) see such a character
# as two halves. A title of tag characters alone was a ticket with no title on every page.
_ASTRAL_INVISIBLE = r"𛲠-𛲣𝅳-𝅺󠀀-󠿿"
_VISIBLE = re.compile(f"[^{_CONTROL}{_SPACE}{_INVISIBLE}{_BIDI}{_ASTRAL_INVISIBLE}]")

# The overrides of those controls force a run of letters to read the other way ("Invoice \u202efdp.exe"
# shows "Invoice exe.pdf"). A ticket's title, category and tags refuse them; embeddings and isolates,
# which apps add around right-to-left text they copy, only set where a run sits, and stay.
OVERRIDES = r"\u202d\u202e"
# A label (a tag, a skill) is shown on chips and in filters, and edited in that text box: no comma,
# control or override, no space at either end (`_END`, where `_IN` may hold one), and one visible
# character (`_SHOWN`) at least. Without lookarounds, which not every reader of the document has: one
# visible character, or two ends with a visible one first, last or between. The document's pattern
# only: its two runs around a visible character backtrack on a long text, so the server checks the
# same rules one search at a time (`_plain_label`).
_END, _IN, _SHOWN = (f"[^,{_CONTROL}{_SPACE}{OVERRIDES}]", f"[^,{_CONTROL}{OVERRIDES}]",
                     f"[^,{_CONTROL}{_SPACE}{_INVISIBLE}{_BIDI}]")
LABEL_PATTERN = f"^(?:{_SHOWN}|{_SHOWN}{_IN}*{_END}|{_END}{_IN}*{_SHOWN}|{_END}{_IN}*{_SHOWN}{_IN}*{_END})$"
# A name's pattern, for the document; the server checks it one search at a time too (`name_problem`).
NAME_PATTERN = f"^[^{_CONTROL}{_BIDI}]*{VISIBLE_CHARACTER}[^{_CONTROL}{_BIDI}]*$"
_BIDI_CONTROL = re.compile(f"[{_BIDI}]")
_OVERRIDE = re.compile(f"[{OVERRIDES}]")
_CONTROL_CHARACTER = re.compile(f"[{_CONTROL}]")
_NOT_IN_LABEL = re.compile(f"[,{_CONTROL}]")
_SPACE_CHARACTER = re.compile(f"[{_SPACE}]")


def name_problem(value: str) -> str | None:
    """Say what is wrong with a name as `display_name` refuses it (None: nothing; "" is Length's)."""
    if not value:
        return None
    if _BIDI_CONTROL.search(value):
        return "Bidirectional control characters are not allowed in a name."
    if _CONTROL_CHARACTER.search(value):
        return "Control characters are not allowed in a name."
    return None if shows_something(value) else "The name must not be blank."


def shows_something(text: str) -> bool:
    """Tell whether `text` holds a character a reader sees (not white space, a control, a zero-width or
    format character)."""
    return _VISIBLE.search(text) is not None


def _visible_name(value: str) -> None:
    problem = name_problem(value)
    if problem:
        raise ValidationError(problem)


def display_name(**kwargs: object) -> fields.String:
    """A name people read on pages (a person's, team's, rule's, key's, organization's): 1 to 200
    characters, one at least visible, and no bidirectional controls."""
    return fields.String(validate=[validate.Length(min=1, max=200), _visible_name],
                         metadata={"pattern": NAME_PATTERN}, **kwargs)


def _plain_label(value: str) -> None:
    if not value:  # Length's to refuse
        return
    if _OVERRIDE.search(value):
        raise ValidationError("Right-to-left and left-to-right overrides are not allowed in a tag or skill.")
    if _NOT_IN_LABEL.search(value) or _SPACE_CHARACTER.match(value[0]) or _SPACE_CHARACTER.match(value[-1]):
        raise ValidationError("A tag or skill cannot hold a comma or a control character, nor begin or end with "
                              "a space.")
    if not shows_something(value):
        raise ValidationError("A tag or skill must not be blank.")


def shown_line(noun: str) -> Callable[[str], None]:
    """Refuse a line of text people read as a label (a ticket's title, its category) that shows nothing, or
    holds an override, which reverses it on the pages ("Invoice \u202efdp.exe")."""

    def check(value: str) -> None:
        if _OVERRIDE.search(value):
            raise ValidationError(f"Right-to-left and left-to-right overrides are not allowed in a {noun}.")
        if not shows_something(value):
            raise ValidationError(f"The {noun} must not be blank.")

    return check


class BoundedList(fields.List):
    """A list whose length validators run before its items are read: a million items were each checked
    (and refused one by one) before the list was found too long."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list):
            for validator in self.validators:
                if isinstance(validator, validate.Length):
                    validator(value)
        return super()._deserialize(value, attr, data, **kwargs)


def tag_list(**kwargs: object) -> fields.List:
    """A list of short labels (tags, skills), at most 50, each as a comma-separated text box can hold it."""
    return BoundedList(fields.String(validate=[validate.Length(min=1, max=64), _plain_label],
                                      metadata={"pattern": LABEL_PATTERN}),
                        validate=validate.Length(max=50), **kwargs)


def _plans(schema: Schema) -> list[tuple[str, str, fields.Field]]:
    """Return (name, attribute, field) for each dumped field, refusing types that are not plain to serialise.

    Only field types whose output is plain are supported; any other type fails here, at import,
    rather than serialising differently from marshmallow.
    """
    plans = []
    for name, field in schema.dump_fields.items():
        plain = type(field) in (fields.String, fields.Integer, fields.Boolean, WholeNumber, Flag)
        iso = isinstance(field, fields.DateTime) and field.format in (None, "iso")
        if not (plain or iso or isinstance(field, fields.Function | fields.UUID | fields.List)):
            raise TypeError(f"cannot serialise {name} ({type(field).__name__}) like marshmallow")
        plans.append((name, "" if isinstance(field, fields.Function) else field.attribute or name, field))
    return plans


def fast_dumper(schema: Schema) -> Callable[[Any], dict[str, Any]]:
    """Return a function that serialises an object exactly as `schema.dump` does, many times faster.

    Built from the schema's own fields, so adding a field to the schema is the only edit.
    """
    plans: list[tuple[str, str, Callable[[Any], Any] | None]] = []
    for name, attribute, field in _plans(schema):
        if not attribute:
            plans.append((name, "", field.serialize_func))
        elif isinstance(field, fields.UUID):
            plans.append((name, attribute, _text))
        elif isinstance(field, fields.DateTime):
            plans.append((name, attribute, _iso))
        elif isinstance(field, fields.List):
            plans.append((name, attribute, _list))
        else:
            plans.append((name, attribute, None))

    def dump(obj: Any) -> dict[str, Any]:
        body = {}
        for name, attribute, convert in plans:
            if not attribute:
                body[name] = convert(obj)
                continue
            value = getattr(obj, attribute)
            body[name] = value if convert is None or value is None else convert(value)
        return body

    return dump


def row_dumper(schema: Schema, columns: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Return a function that turns a database row into what `schema.dump` says.

    For the read paths that never build objects. The row holds one value per dumped field, in the
    schema's order, computed by the statement (a `Function` field's too: see `tickets.reads`);
    columns after those are the statement's own and left out (`columns`, the statement's names for
    its columns, are checked against the fields here, once). The values stay as the driver made
    them (UUID, datetime, list), which orjson writes exactly as marshmallow's strings read, so
    one JSON encoding step does what marshmallow and `json.dumps` did.
    """
    _plans(schema)
    names = tuple(schema.dump_fields)
    if tuple(columns[:len(names)]) != names:
        raise TypeError(f"a row must begin with the fields {names}, in order; the statement names {columns}")

    def dump(row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(names, row))  # noqa: B905 (the row may go on past the fields)

    return dump


def _text(value: uuid.UUID) -> str:
    return str(value)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _list(value: list) -> list:
    return list(value)


def parse_uuid(text: str) -> uuid.UUID:
    """The id `text` spells in canonical form; ValueError for anything else."""
    if not isinstance(text, str) or _UUID.fullmatch(text) is None:
        raise ValueError("not a canonical UUID")
    return uuid.UUID(text)


class Whole(validate.Regexp):
    """A pattern the whole value must match: `Regexp` matches from the start only, and its `$` lets a
    final newline through ("16 to 256 printable characters" took a secret ending in one)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Uuid(fields.UUID):
    """An id in canonical form only (see UUID_PATTERN); the document states the pattern."""

    def _validated(self, value):
        if isinstance(value, uuid.UUID):
            return value
        try:
            return parse_uuid(value)
        except ValueError as exc:
            raise self.make_error("invalid_uuid") from exc


class EmailAddress(fields.Email):
    """An email address without invisible or line-separating characters (no lookalike addresses; a new
    address in compatibility letters is refused where addresses are given: `people.services`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        address = super()._deserialize(value, attr, data, **kwargs)
        if any(unicodedata.category(c) in ("Cf", "Zl", "Zp", "Zs", "Cc") for c in address):
            raise ValidationError("Not a valid email address.")
        return address


class WholeNumber(fields.Integer):
    """An integer in a JSON body: `1.5`, `"12"` and `true` are refused, never truncated or converted."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class QueryNumber(fields.Integer):
    """A whole number in a query string: ASCII digits only, so fullwidth digits, `5_0`, `+5` and `5\\n` are refused as
    lookalikes instead of read as 5 or 50 (`int()` reads them all)."""

    DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)

    def _validated(self, value):
        if isinstance(value, bool) or (isinstance(value, str) and not self.DIGITS.fullmatch(value)):
            raise self.make_error("invalid")
        return super()._validated(value)


class Flag(fields.Boolean):
    """A boolean in a JSON body: only `true` or `false`, not `"yes"`, `1` or `"on"`."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ErrorSchema(Schema):
    code = fields.Integer()
    status = fields.String()
    message = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


# RFC 3339's date-time, or a date alone (midnight UTC), as the whole value: Python's own parser
# also takes ISO 8601's basic forms, so 300 digits read as 1111-11-11T11:11:11.111111.
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?",
                       re.ASCII)


class UtcDateTime(fields.AwareDateTime):
    """An RFC 3339 timestamp, or a date (UTC when no zone is given), normalised to UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only up to ±15:59, so values are converted
    before they reach a query rather than failing there.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or TIMESTAMP.fullmatch(value) is None:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        parsed = super()._deserialize(value.upper(), attr, data, **kwargs)  # RFC 3339 allows "t" and "z"
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError("Not a representable timestamp.") from exc
