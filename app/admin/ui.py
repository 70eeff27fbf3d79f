"""The admin's pages: the dashboard and the settings, under `/t/<slug>/admin`.

Admins only: anyone else signed in gets 403, and a session of another organization is not a
session here at all (it is sent to sign in). Every page calls the same services as the API and
reads its form or query string through the API's own schemas (`app.admin.forms`), so a page
accepts exactly what the API accepts and refuses it in the same words, beside the field. Each
settings page is a table with its forms beside it; a refused form shows the page again with the
values typed and the messages, with the status the API would have answered.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin import charts
from app.admin.audit_view import rows_of
from app.admin.forms import load_query, query_values, read_fields
from app.api_keys import services as keys
from app.api_keys.api import ApiKeySchema, RotationSchema
from app.assignment import services as assignment
from app.assignment.models import STRATEGIES
from app.assignment.schemas import RulePatchSchema, RuleSchema, SampleTicketSchema
from app.audit import services as audit_log
from app.audit.api import AuditEventArgs
from app.auth.actor import current_actor
from app.dashboard import services as reports
from app.dashboard.api import OverviewArgs
from app.errors import Forbidden, Invalid
from app.events import EVENT_TYPES
from app.extensions import db
from app.media import services as media
from app.media import types as media_types
from app.media.schemas import MediaSettingsSchema
from app.people import services as directory
from app.people.models import ROLES
from app.people.schemas import TeamPatchSchema, TeamSchema, UserListArgs, UserPatchSchema, UserSchema
from app.schemas import parse_uuid
from app.tickets import export
from app.tickets.listing import list_tickets
from app.tickets.models import OPEN_STATUSES, PRIORITIES, STATUSES
from app.tickets.schemas import RELEVANCE, ExportArgs, TicketListArgs
from app.ui.layout import Section, add_section, ago
from app.ui.once import sent_once
from app.ui.pages import field_messages, refusals
from app.webhooks import services as hooks
from app.webhooks.schemas import AttemptListArgs, WebhookPatchSchema, WebhookSchema

bp = Blueprint("admin_ui", __name__, url_prefix="/admin")
ADMIN = ("admin",)
TABLE_PAGE = 50
SETTINGS_PAGE = 100
LIST_ARGS, EXPORT_ARGS, OVERVIEW = TicketListArgs(), ExportArgs(), OverviewArgs()
TABLE_FILTERS = ("status", "priority", "team_id", "assignee_id", "category", "tag", "created_after",
                 "created_before", "q")
SORTABLE = {"number": "#", "priority": "priority", "status": "status", "created_at": "created_at",
            "updated_at": "updated_at"}
PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days", "365": "Last 365 days"}
USER, USER_CHANGE, TEAM, TEAM_CHANGE = UserSchema(), UserPatchSchema(), TeamSchema(), TeamPatchSchema()
RULE, RULE_CHANGE, SAMPLE = RuleSchema(), RulePatchSchema(), SampleTicketSchema()
KEY, ROTATION = ApiKeySchema(), RotationSchema()
HOOK, HOOK_CHANGE, MEDIA = WebhookSchema(), WebhookPatchSchema(), MediaSettingsSchema()
AUDIT_ARGS, ATTEMPT_ARGS, USER_ARGS = AuditEventArgs(), AttemptListArgs(), UserListArgs()
ENTITY_TYPES = ("ticket", "message", "user", "team", "api_key", "assignment_rule", "webhook", "attachment",
                "media_settings")
SETTINGS = (("People", "admin_ui.people"), ("Teams", "admin_ui.teams"), ("Assignment rules", "admin_ui.rules"),
            ("API keys", "admin_ui.api_keys"), ("Webhooks", "admin_ui.webhooks"), ("Media", "admin_ui.media_settings"),
            ("Audit log", "admin_ui.audit"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.filters.update(duration=duration, since=since)
    add_section(app, Section("Dashboard", "admin_ui.dashboard", ADMIN, pages=("admin_ui.dashboard",)))
    settings = tuple(endpoint for endpoint in app.view_functions if endpoint.startswith("admin_ui.")
                     and endpoint not in ("admin_ui.dashboard", "admin_ui.export_tickets"))
    add_section(app, Section("Settings", "admin_ui.people", ADMIN, pages=settings))


def duration(seconds: int | None) -> str:
    """Say a duration the way a dashboard does: "45 s", "38 min", "6.1 h", "2.3 d"; "—" when unknown."""
    if seconds is None:
        return "—"
    for size, unit in ((86400, "d"), (3600, "h")):
        if seconds >= size:
            value = seconds / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def since(moment: str | None) -> str:
    """Say how long ago an RFC 3339 moment (as the cached figures carry it) was."""
    return ago(datetime.fromisoformat(moment)) if moment else ""


@bp.before_request
def admins_only():
    """Let only this organization's signed-in admins in: others are refused before any view runs."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if current_actor().role != "admin":
        raise Forbidden("Only admins can open the dashboard and the settings.")
    return None


@bp.context_processor
def settings_menu() -> dict[str, Any]:
    return {"settings_menu": SETTINGS}


def _commit(message: str) -> None:
    db.session.commit()
    flash(message, "success")


# --- the dashboard -----------------------------------------------------------------------------


def table_args(schema) -> dict[str, Any]:
    """Read the table's filters (and sort, cursor) from the query string, as the API takes them."""
    names = TABLE_FILTERS + (("sort", "cursor", "limit") if schema is LIST_ARGS else ())
    raw = query_values(names, multi=("status", "priority"), days=("created_after", "created_before"))
    return load_query(schema, raw)


def _filters_url(endpoint: str = "admin_ui.dashboard", **changes: Any) -> str:
    """Return a URL of the dashboard (or export) with the current filters and period, changed by `changes`."""
    keep = [(k, v) for k, v in request.args.items(multi=True)
            if k in (*TABLE_FILTERS, "sort", "limit", "from", "to", "period")]
    params = [(k, v) for k, v in keep if k not in changes and k != "cursor"]
    for name, value in changes.items():
        values = value if isinstance(value, list | tuple) else [value]
        params += [(name, v) for v in values if v not in (None, "")]
    query = urlencode(params)
    return url_for(endpoint) + (f"?{query}" if query else "")


def _period() -> reports.Period:
    today = datetime.now(UTC).date()
    preset = request.args.get("period", "")
    if preset in PERIODS and not request.args.get("from"):
        return reports.Period.of(today - timedelta(days=int(preset) - 1), today, today)
    args = load_query(OVERVIEW, query_values(("from", "to")))
    return reports.Period.of(args["from_"], args["to"], today)


@bp.get("", strict_slashes=False)
def dashboard():
    """Show the figures for a period, the charts, and every ticket with filters, sort, search, paging, export."""
    actor = current_actor()
    figures = flow = load = None
    with refusals() as period_refused:
        period = _period()
        figures = reports.figures(period)
        bucket = figures.get("bucket", "day")
        flow = charts.flow_chart(figures["flow"], bucket, period.end, lambda start, end: _filters_url(
            created_after=start.isoformat(), created_before=end and end.isoformat()) + "#tickets")
        load = charts.load_chart(figures["agents"], lambda user_id: _filters_url(
            assignee_id=user_id, status=list(OPEN_STATUSES)) + "#tickets")
    found = None
    with refusals() as table_refused:
        args = table_args(LIST_ARGS)
        found = list_tickets(db.session, actor, {"limit": TABLE_PAGE, **args},
                             current_app.config["SEARCH_STATEMENT_TIMEOUT_MS"], search_sort=RELEVANCE)
    items = found.items if found else []
    staff = directory.staff_users()
    teams = directory.teams_by_name()
    shown = directory.users_by_id([t.requester_id for t in items] + [t.assignee_id for t in items])
    shown.update({u.id: u for u in staff})
    refused = period_refused.refusal or table_refused.refusal
    return render_template(
        "admin/dashboard.html", figures=figures, flow=flow, load=load, tickets=items,
        next_cursor=found.next_cursor if found else None, order=found.order if found else None,
        people=shown, staff=staff, teams={t.id: t for t in teams}, team_list=teams, statuses=STATUSES,
        priorities=PRIORITIES, open_statuses=OPEN_STATUSES, sortable=SORTABLE, periods=PERIODS,
        chosen_status=query_values(("status",), multi=("status",)).get("status", "").split(","),
        chosen_priority=query_values(("priority",), multi=("priority",)).get("priority", "").split(","),
        sort=request.args.get("sort", ""), refused=refused, filters_url=_filters_url,
        cache_seconds=current_app.config["DASHBOARD_CACHE_SECONDS"],
    ), refused.status if refused else 200


@bp.get("/export")
def export_tickets():
    """Download exactly the filtered tickets as CSV or JSON, streamed as the API streams them."""
    raw = query_values((*TABLE_FILTERS, "format"), multi=("status", "priority"),
                       days=("created_after", "created_before"))
    args = load_query(EXPORT_ARGS, raw)
    fmt = args.pop("format")
    return export.download(current_actor(), args, fmt)


# --- people ------------------------------------------------------------------------------------

USER_TEXT = ("email", "name", "role", "password")


def people_view(refused=None, form: str | None = None, status: int = 200):
    found = None
    with refusals() as list_refused:
        args = load_query(USER_ARGS, query_values(("role", "cursor")))
        found = directory.list_users(args.get("role"), SETTINGS_PAGE, args.get("cursor"))
    users, next_cursor = found if found else ([], None)
    refused = refused or list_refused.refusal
    return render_template("admin/people.html", users=users, next_cursor=next_cursor, roles=ROLES,
                           role=request.args.get("role", ""), refused=refused, refused_form=form,
                           values=request.form if refused else {}), refused.status if refused else status


@bp.get("/people")
def people():
    """List the organization's people, with a form to add one."""
    return people_view()


@bp.post("/people")
def create_person():
    """Add a user (`email`, `name`, `role`, `password`, `skills`, `capacity`, `available`)."""
    with refusals() as refused:
        fields = read_fields(USER, text=USER_TEXT, numbers=("capacity",), lists=("skills",),
                             checkboxes=("available",))
        user = directory.create_user(**fields)
        name = user.name
        _commit(f"{name} can now sign in.")
        return redirect(url_for("admin_ui.people"))
    return people_view(refused.refusal, "create")


def person_view(user_id: uuid.UUID, refused=None, form: str | None = None):
    user = directory.user_or_404(user_id)
    return render_template("admin/person.html", user=user, roles=ROLES, refused=refused, refused_form=form,
                           values=request.form if refused else {}), refused.status if refused else 200


@bp.get("/people/<uuid:user_id>")
def person(user_id: uuid.UUID):
    """Show a user with the form that changes their role, skills, capacity and availability."""
    return person_view(user_id)


@bp.post("/people/<uuid:user_id>")
def change_person(user_id: uuid.UUID):
    """Change a user's `name`, `email`, `role`, `skills`, `capacity` or `available`."""
    with refusals() as refused:
        directory.user_or_404(user_id)
        fields = read_fields(USER_CHANGE, text=("email", "name", "role"), numbers=("capacity",),
                             lists=("skills",), checkboxes=("available",), partial=True)
        user = directory.change_user(current_actor(), user_id, fields)
        name = user.name
        _commit(f"Saved {name}.")
        return redirect(url_for("admin_ui.person", user_id=user_id))
    return person_view(user_id, refused.refusal, "change")


@bp.post("/people/<uuid:user_id>/password")
def set_password(user_id: uuid.UUID):
    """Give a user a new `password` (one who forgot theirs): it signs them out everywhere, as the API's does.

    Not one's own: that is changed on one's own page, which asks for the current password and counts
    wrong guesses (here, anyone at an admin's open browser could have replaced it).
    """
    with refusals() as refused:
        directory.user_or_404(user_id)
        if user_id == current_actor().user_id:
            raise Forbidden("Change your own password from your name at the top of the page: it asks for the "
                           "current one.")
        if not request.form.get("password", "").strip():
            raise Invalid("Please fix the fields marked below.", {"password": ["This is required."]})
        fields = read_fields(USER_CHANGE, text=("password",), partial=True)
        user = directory.change_user(current_actor(), user_id, fields)
        _commit(f"{user.name} has a new password and was signed out everywhere.")
        return redirect(url_for("admin_ui.person", user_id=user_id))
    return person_view(user_id, refused.refusal, "password")


@bp.post("/people/<uuid:user_id>/deactivate")
def deactivate_person(user_id: uuid.UUID):
    """Deactivate a user: signed out everywhere, their keys revoked, off every team and their unsolved tickets."""
    with refusals() as refused:
        user = directory.user_or_404(user_id)
        name = user.name
        directory.delete_user(user)
        _commit(f"{name} is deactivated: signed out, keys revoked, off every team and their unsolved tickets.")
        return redirect(url_for("admin_ui.people"))
    return person_view(user_id, refused.refusal, "deactivate")


# --- teams -------------------------------------------------------------------------------------


def teams_view(refused=None, form: str | None = None):
    found, _ = directory.list_teams(SETTINGS_PAGE, None)
    staff = directory.staff_users()
    return render_template("admin/teams.html", teams=found, staff=staff, people={u.id: u for u in staff},
                           refused=refused, refused_form=form, values=request.form if refused else {}), \
        refused.status if refused else 200


@bp.get("/teams")
def teams():
    """List teams with their members, and forms to add teams and members."""
    return teams_view()


@bp.post("/teams")
def create_team():
    """Add a team (`name`, `description`)."""
    with refusals() as refused:
        team = directory.create_team(**read_fields(TEAM, text=("name", "description")))
        name = team.name
        _commit(f"Team {name} added. Add its members below.")
        return redirect(url_for("admin_ui.teams", _anchor=f"team-{team.id}"))
    return teams_view(refused.refusal, "create")


@bp.post("/teams/<uuid:team_id>")
def change_team(team_id: uuid.UUID):
    """Rename a team or change its `description`."""
    with refusals() as refused:
        found = directory.team_or_404(team_id)
        team = directory.update_team(found, read_fields(TEAM_CHANGE, text=("name", "description"), partial=True))
        name = team.name
        _commit(f"Saved team {name}.")
        return redirect(url_for("admin_ui.teams", _anchor=f"team-{team_id}"))
    return teams_view(refused.refusal, f"team-{team_id}")


@bp.post("/teams/<uuid:team_id>/delete")
def delete_team(team_id: uuid.UUID):
    """Delete a team; rules that route to it must be changed first."""
    with refusals() as refused:
        team = directory.team_or_404(team_id)
        name = team.name
        directory.delete_team(team)
        _commit(f"Team {name} deleted.")
        return redirect(url_for("admin_ui.teams"))
    return teams_view(refused.refusal, f"team-{team_id}")


@bp.post("/teams/<uuid:team_id>/members")
def add_member(team_id: uuid.UUID):
    """Put an agent or admin (`user_id`) on a team."""
    with refusals() as refused:
        team = directory.team_or_404(team_id)
        raw = request.form.get("user_id", "")
        try:
            user_id = parse_uuid(raw)
        except ValueError:
            raise Invalid("Choose someone to add.", {"user_id": ["Choose an agent or admin."]}) from None
        user = directory.user_or_404(user_id)
        directory.add_member(team, user)
        _commit(f"{user.name} is on {team.name}.")
        return redirect(url_for("admin_ui.teams", _anchor=f"team-{team_id}"))
    return teams_view(refused.refusal, f"team-{team_id}")


@bp.post("/teams/<uuid:team_id>/members/<uuid:user_id>/remove")
def remove_member(team_id: uuid.UUID, user_id: uuid.UUID):
    """Take someone off a team."""
    with refusals() as refused:
        directory.remove_member(directory.team_or_404(team_id), user_id)
        _commit("Removed from the team.")
        return redirect(url_for("admin_ui.teams", _anchor=f"team-{team_id}"))
    return teams_view(refused.refusal, f"team-{team_id}")


# --- assignment rules --------------------------------------------------------------------------

RULE_TEXT = ("name", "team_id", "strategy")
CONDITIONS = ("category", "tags_any", "keywords_any")


def _rule_fields(schema, partial: bool) -> dict[str, Any]:
    """Read a rule form: its own fields, and its `conditions` (priority boxes, comma-separated lists).

    In a change, the conditions are read only from a form that shows them (`shown`): rebuilt from a
    post that left them out, they went empty, and the rule matched every ticket.
    """
    fields = read_fields(schema, text=RULE_TEXT, numbers=("position",), lists=("required_skills",),
                         checkboxes=("enabled",), partial=partial)
    if partial and "conditions" not in request.form.getlist("shown"):
        return fields
    conditions: dict[str, Any] = {"priority": [p for p in request.form.getlist("priority") if p]}
    conditions.update({name: [v.strip() for v in request.form.get(name, "").split(",") if v.strip()]
                       for name in CONDITIONS})
    try:
        fields["conditions"] = schema.fields["conditions"].deserialize(conditions)
    except Exception as exc:  # marshmallow's ValidationError, with messages per condition
        messages = getattr(exc, "messages", {"conditions": [str(exc)]})
        raise Invalid("Please fix the fields marked below.", field_messages(messages)) from None
    return fields


def rules_view(refused=None, form: str | None = None, tried: dict | None = None, status: int = 200):
    rules = list(assignment.list_rules(SETTINGS_PAGE, None)[0])
    team_list = directory.teams_by_name()
    staff = directory.staff_users()
    return render_template("admin/rules.html", rules=rules, teams={t.id: t for t in team_list}, team_list=team_list,
                           strategies=STRATEGIES, priorities=PRIORITIES, refused=refused, refused_form=form,
                           values=request.form if (refused or tried) else {}, tried=tried,
                           people={u.id: u for u in staff}), refused.status if refused else status


@bp.get("/rules")
def rules():
    """List the rules in the order they are tried, with forms to add one and to test them."""
    return rules_view()


@bp.post("/rules")
def create_rule():
    """Add a rule: the first enabled rule whose conditions all hold picks the team and the strategy."""
    with refusals() as refused:
        rule = assignment.create_rule(**_rule_fields(RULE, partial=False))
        name = rule.name
        _commit(f"Rule {name} added. Test it below with a sample ticket.")
        return redirect(url_for("admin_ui.rules", _anchor="test"))
    return rules_view(refused.refusal, "create")


@bp.get("/rules/<uuid:rule_id>")
def rule(rule_id: uuid.UUID):
    """Show a rule's form."""
    return rule_view(rule_id)


def rule_view(rule_id: uuid.UUID, refused=None):
    found = assignment.rule_or_404(rule_id)
    team_list = directory.teams_by_name()
    return render_template("admin/rule.html", rule=found, team_list=team_list, strategies=STRATEGIES,
                           priorities=PRIORITIES, refused=refused, values=request.form if refused else {}), \
        refused.status if refused else 200


@bp.post("/rules/<uuid:rule_id>")
def change_rule(rule_id: uuid.UUID):
    """Change a rule; waiting tickets are re-evaluated in the background."""
    with refusals() as refused:
        found = assignment.rule_or_404(rule_id)
        assignment.update_rule(found, _rule_fields(RULE_CHANGE, partial=True))
        name = found.name
        _commit(f"Saved rule {name}.")
        return redirect(url_for("admin_ui.rules"))
    return rule_view(rule_id, refused.refusal)


@bp.post("/rules/<uuid:rule_id>/enabled")
def toggle_rule(rule_id: uuid.UUID):
    """Turn a rule on or off (`enabled`)."""
    with refusals() as refused:
        found = assignment.rule_or_404(rule_id)
        assignment.update_rule(found, {"enabled": "enabled" in request.form})
        name, enabled = found.name, found.enabled
        _commit(f"Rule {name} is {'on' if enabled else 'off'}.")
        return redirect(url_for("admin_ui.rules"))
    return rules_view(refused.refusal, "list")


@bp.post("/rules/<uuid:rule_id>/move")
def move_rule(rule_id: uuid.UUID):
    """Move a rule one place earlier (`direction=up`) or later (`down`)."""
    with refusals() as refused:
        assignment.rule_or_404(rule_id)
        offset = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
        if offset is None:
            raise Invalid("Say which way to move the rule.", {"direction": ["up or down"]})
        assignment.move_rule(rule_id, offset)
        _commit("Order saved: rules are tried from the top.")
        return redirect(url_for("admin_ui.rules"))
    return rules_view(refused.refusal, "list")


@bp.post("/rules/order")
def order_rules():
    """Save the order of every rule (`rule_ids`, first tried first), as dragged on the page."""
    with refusals() as refused:
        try:
            ids = [parse_uuid(v) for v in request.form.getlist("rule_ids")]
        except ValueError:
            raise Invalid("The order names something that is not a rule.", {"rule_ids": ["Not a rule."]}) from None
        assignment.reorder_rules(ids)
        _commit("Order saved: rules are tried from the top.")
        return redirect(url_for("admin_ui.rules"))
    return rules_view(refused.refusal, "list")


@bp.post("/rules/<uuid:rule_id>/delete")
def delete_rule(rule_id: uuid.UUID):
    """Delete a rule; past decisions keep its name."""
    with refusals() as refused:
        found = assignment.rule_or_404(rule_id)
        name = found.name
        assignment.delete_rule(found)
        _commit(f"Rule {name} deleted.")
        return redirect(url_for("admin_ui.rules"))
    return rules_view(refused.refusal, "list")


@bp.post("/rules/test")
def test_rule():
    """Say where a sample ticket would go now and why (a dry run: nothing is created or assigned)."""
    with refusals() as refused:
        sample = read_fields(SAMPLE, text=("title", "description", "priority", "category"), lists=("tags",))
        raw_rule = request.form.get("rule_id", "")
        try:
            rule_id = parse_uuid(raw_rule) if raw_rule else None
        except ValueError:
            raise Invalid("Choose a rule to test.", {"rule_id": ["Not a rule."]}) from None
        tried = assignment.dry_run(assignment.SampleTicket(**sample), rule_id)
        db.session.rollback()
        return rules_view(tried=tried)
    return rules_view(refused.refusal, "test")


# --- API keys ----------------------------------------------------------------------------------


def keys_view(refused=None, form: str | None = None, minted: dict | None = None, status: int = 200):
    found, next_cursor = keys.list_keys(SETTINGS_PAGE, request.args.get("cursor") or None)
    users = directory.users_by_id([k["user_id"] for k in found])
    everyone, _ = directory.list_users(None, 200, None)
    return render_template("admin/api_keys.html", keys=found, people=users, everyone=everyone, roles=ROLES,
                           now=datetime.now(UTC), minted=minted, refused=refused, refused_form=form,
                           values=request.form if refused else {}, next_cursor=next_cursor), \
        refused.status if refused else status


@bp.get("/api-keys")
def api_keys():
    """List the organization's keys with when each was last used; forms to create, rotate and revoke."""
    return keys_view()


@bp.post("/api-keys")
def create_key():
    """Create a key (`name`, `role`, `user_id`): shown once, on the page that answers."""
    with refusals() as refused:
        fields = read_fields(KEY, text=("name", "role", "user_id"))
        sent_once()
        minted = keys.create_key(current_actor(), fields["name"], fields["role"], fields["user_id"])
        db.session.commit()
        return keys_view(minted=minted, status=201)
    return keys_view(refused.refusal, "create")


@bp.post("/api-keys/<uuid:key_id>/revoke")
def revoke_key(key_id: uuid.UUID):
    """Revoke a key: refused from its next request on, in every process."""
    with refusals() as refused:
        keys.revoke(key_id)
        _commit("The key is revoked: it is refused from its next request on.")
        return redirect(url_for("admin_ui.api_keys"))
    return keys_view(refused.refusal, f"key-{key_id}")


@bp.post("/api-keys/<uuid:key_id>/rotate")
def rotate_key(key_id: uuid.UUID):
    """Mint a successor; the old key keeps working `grace_seconds` more."""
    with refusals() as refused:
        keys.live_key(key_id)
        fields = read_fields(ROTATION, numbers=("grace_seconds",))
        sent_once()
        minted = keys.rotate(current_actor(), key_id, fields["grace_seconds"])
        db.session.commit()
        return keys_view(minted=minted, status=201)
    return keys_view(refused.refusal, f"key-{key_id}")


# --- webhooks ----------------------------------------------------------------------------------

HOOK_TEXT = ("url", "description", "secret")


def webhooks_view(refused=None, form: str | None = None, secret: str | None = None, status: int = 200):
    found, _ = hooks.list_subscriptions(hooks.MAX_SUBSCRIPTIONS, None)
    return render_template("admin/webhooks.html", hooks=found, events=EVENT_TYPES, secret=secret, refused=refused,
                           refused_form=form, values=request.form if refused else {}), \
        refused.status if refused else status


@bp.get("/webhooks")
def webhooks():
    """List the webhooks, with a form to add one."""
    return webhooks_view()


@bp.post("/webhooks")
def create_webhook():
    """Subscribe a URL (`url`, `events`, `include_internal`, `description`, `secret`); the secret is shown once."""
    with refusals() as refused:
        fields = read_fields(HOOK, text=HOOK_TEXT, checkboxes=("include_internal",), choices=("events",))
        sent_once()
        _subscription, secret = hooks.create_subscription(**fields)
        db.session.commit()
        return webhooks_view(secret=secret, status=201)
    return webhooks_view(refused.refusal, "create")


def webhook_view(webhook_id: uuid.UUID, refused=None, form: str | None = None):
    hook = hooks.subscription_or_404(webhook_id)
    attempts, next_cursor = [], None
    with refusals() as log_refused:
        args = load_query(ATTEMPT_ARGS, query_values(("status", "cursor")))
        attempts, next_cursor = hooks.list_attempts(hook, 50, args.get("cursor"), status=args.get("status"))
    refused = refused or log_refused.refusal
    return render_template("admin/webhook.html", hook=hook, events=EVENT_TYPES, attempts=attempts,
                           next_cursor=next_cursor, status=request.args.get("status", ""), refused=refused,
                           refused_form=form, values=request.form if refused else {}), \
        refused.status if refused else 200


@bp.get("/webhooks/<uuid:webhook_id>")
def webhook(webhook_id: uuid.UUID):
    """Show a webhook's settings and its delivery log, newest first."""
    return webhook_view(webhook_id)


@bp.post("/webhooks/<uuid:webhook_id>")
def change_webhook(webhook_id: uuid.UUID):
    """Change a webhook's `url`, `events`, `description`, `include_internal` or `enabled`."""
    with refusals() as refused:
        fields = read_fields(HOOK_CHANGE, text=("url", "description"), checkboxes=("include_internal", "enabled"),
                             choices=("events",), partial=True)
        hooks.change_subscription(webhook_id, fields)
        _commit("Webhook saved.")
        return redirect(url_for("admin_ui.webhook", webhook_id=webhook_id))
    return webhook_view(webhook_id, refused.refusal, "change")


@bp.post("/webhooks/<uuid:webhook_id>/delete")
def delete_webhook(webhook_id: uuid.UUID):
    """Delete a webhook and its delivery log."""
    with refusals() as refused:
        hooks.delete_subscription(hooks.subscription_or_404(webhook_id, lock=True))
        _commit("Webhook deleted.")
        return redirect(url_for("admin_ui.webhooks"))
    return webhook_view(webhook_id, refused.refusal, "change")


@bp.post("/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
def redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID):
    """Send an attempt's event again, now (`delivery_id` is the attempt's id, as in the API)."""
    with refusals() as refused:
        hooks.redeliver(hooks.subscription_or_404(webhook_id), delivery_id)
        _commit("Sent again: the new attempt appears in the log in a moment.")
        return redirect(url_for("admin_ui.webhook", webhook_id=webhook_id))
    return webhook_view(webhook_id, refused.refusal, "log")


# --- media -------------------------------------------------------------------------------------


def media_view(refused=None):
    settings = media.settings_json()
    return render_template("admin/media.html", settings=settings, types=media_types.ALLOWED, refused=refused,
                           values=request.form if refused else {}), refused.status if refused else 200


@bp.get("/media")
def media_settings():
    """Show the organization's file types, size limit and storage use, with the form that narrows them."""
    return media_view()


@bp.post("/media")
def change_media_settings():
    """Narrow the `allowed_types` and the `max_size` (empty: the instance's)."""
    with refusals() as refused:
        changes = read_fields(MEDIA, numbers=("max_size",), choices=("allowed_types",))
        if "every_type" in request.form:
            changes["allowed_types"] = None
        if not request.form.get("max_size", "").strip():
            changes["max_size"] = None
        media.update_settings(changes)
        _commit("Media settings saved.")
        return redirect(url_for("admin_ui.media_settings"))
    return media_view(refused.refusal)


# --- the audit log -----------------------------------------------------------------------------


@bp.get("/audit")
def audit():
    """List who did what, newest first, filtered by entity, actor, action and time, paged."""
    found = None
    with refusals() as refused:
        raw = query_values(("entity_type", "entity_id", "actor_id", "action", "created_after", "created_before",
                            "cursor", "limit"), days=("created_after", "created_before"))
        args = load_query(AUDIT_ARGS, raw)
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        found = audit_log.list_events(limit, cursor, **args)
    entries, next_cursor = found if found else ([], None)
    everyone, _ = directory.list_users(None, 200, None)
    named = directory.users_by_id([e.actor_id for e in entries])
    refused = refused.refusal
    return render_template("admin/audit.html", rows=rows_of(entries), next_cursor=next_cursor, people=named,
                           everyone=everyone, entity_types=ENTITY_TYPES, refused=refused,
                           filters={k: request.args.get(k, "") for k in ("entity_type", "entity_id", "actor_id",
                                                                          "action", "created_after",
                                                                          "created_before")}), \
        refused.status if refused else 200


