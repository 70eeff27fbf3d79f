"""A row that can never succeed is given up after OUTBOX_MAX_ATTEMPTS failed runs, instead of running
for ever (it ran about 17,000 times a day, each relay redelivery starting another chain of RQ retries)."""

import uuid

import pytest
import sqlalchemy as sa

from app.media import handlers
from app.outbox.dispatch import relay_tenant
from app.outbox.models import Event, OutboxRow, tenant_txid
from app.worker import run_outbox_row, use_app

SCAN = f"{handlers.scan_uploaded_attachment.__module__}.{handlers.scan_uploaded_attachment.__qualname__}"


def poison_row(in_tenant, tenant, attachment_id: str = "not-a-uuid") -> int:
    with in_tenant(tenant) as session:
        event = session.execute(sa.insert(Event).values(
            type="attachment.uploaded", payload={"attachment_id": attachment_id}, data=None, txid=tenant_txid(),
        ).returning(Event.id)).scalar_one()
        row = session.execute(sa.insert(OutboxRow).values(event_id=event, handler=SCAN).returning(OutboxRow.id))
        row_id = row.scalar_one()
        session.commit()
    return row_id


def test_a_row_failing_every_run_is_given_up_listed_and_run_again_on_demand(app, tenant, in_tenant, monkeypatch,
                                                                             make_tenant):
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 3)
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 0)
    use_app(app)
    row_id = poison_row(in_tenant, tenant)
    for _ in range(2):
        with pytest.raises(ValueError):
            run_outbox_row(tenant.slug, row_id)
    assert run_outbox_row(tenant.slug, row_id) == "given up"
    with in_tenant(tenant) as session:
        row = session.get(OutboxRow, row_id)
        assert row.attempts == 3 and row.given_up_at is not None and "badly formed" in row.last_error
        assert row.processed_at is None
    with in_tenant(tenant):
        assert relay_tenant(tenant.slug) == 0  # left alone: no more chains of retries

    damaged = make_tenant()  # an unreadable schema does not keep the others from the list
    with in_tenant(damaged) as session:
        session.execute(sa.text(f'drop table "tenant_{damaged.slug}".outbox cascade'))
        session.commit()
    cli = app.test_cli_runner()
    listed = cli.invoke(args=["outbox", "given-up"])
    assert listed.exit_code == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith(f"{tenant.slug}\t"))
    assert f"\t{row_id}\t{SCAN}\t3 runs\t" in line and "ValueError" in line
    assert cli.invoke(args=["outbox", "retry", f"{tenant.slug}\n"]).exit_code == 2  # a slug, whole, or nothing
    assert cli.invoke(args=["outbox", "retry", "no-such-tenant"]).exit_code == 1
    again = cli.invoke(args=["outbox", "retry", tenant.slug, "--row", str(row_id)])
    assert again.exit_code == 0 and "1 rows" in again.output
    with in_tenant(tenant):
        assert relay_tenant(tenant.slug) == 1  # handed on once more, with a fresh count
    with in_tenant(tenant) as session:
        row = session.get(OutboxRow, row_id)
        assert row.attempts == 0 and row.given_up_at is None


def test_an_outage_is_not_a_failed_run(app, tenant, in_tenant, monkeypatch):
    """Runs that ask to be retried later (clamd, the storage down) never add up to giving a row up."""
    from app.errors import Unavailable
    from app.media import services

    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 1)
    use_app(app)
    row_id = poison_row(in_tenant, tenant, str(uuid.uuid4()))

    def outage(attachment_id):
        raise Unavailable("clamd is down")

    monkeypatch.setattr(services, "scan_attachment", outage)
    for _ in range(3):
        assert run_outbox_row(tenant.slug, row_id) != "given up"
    with in_tenant(tenant) as session:
        row = session.get(OutboxRow, row_id)
        assert row.attempts == 0 and row.given_up_at is None and "clamd is down" in row.last_error
