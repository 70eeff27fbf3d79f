"""Load one tenant with many tickets and messages by COPY, for the find and export benchmarks.

Sizes come from the environment: `BENCH_TICKETS` (default 1,000,000) and `BENCH_MESSAGES`
(default three per ticket). Texts are drawn from a small vocabulary with known frequencies so the
query mix has terms of every selectivity:

- `printer` is in about 18% of titles (a common term), `network` in about 5% (prefix `netw*`);
- `refNNNNN` codes appear in about 20 tickets each (rare terms);
- `"paper jam"` is a phrase in about 2% of descriptions, while `paper` and `jam` also occur apart;
- `screenshot` appears only in messages (about 10% of them);
- `xylophone` appears nowhere.

Timestamps are filled as a help desk leaves them, so the dashboard's figures mean something: every
ticket past `new` has a first staff reply minutes to hours after it opened (sooner the more urgent),
resolved and closed ones a resolution hours to days later, and closed ones a `closed_at` a day after
that (never in the future). Agents have a capacity, so load against capacity can be drawn.

Secondary indexes are dropped for the load and rebuilt after it (a GIN index grows far faster in
one build than row by row), and foreign-key triggers are skipped while copying rows we know
to be consistent. Ticket ids are derived from their numbers, so messages need no lookup.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from tenants.names import schema_for

SUBJECTS = ["Cannot", "Unable to", "Problem with", "Question about", "Broken", "Slow", "Error in", "Help with"]
NOUNS = ["login", "invoice", "laptop", "email", "monitor", "keyboard", "account", "password", "phone",
         "calendar", "license", "backup", "database", "report", "dashboard", "camera", "badge", "chair"]
_FILLER_TEXT = ("the a when after before during every since today yesterday again still it my our their this that "
          "user customer office team manager update install restart reboot open close save print send receive "
          "window screen button setting profile access folder drive server client app version mobile tablet "
          "slow fast broken missing blocked locked expired denied failed crashed frozen stuck error warning "
          "alert message notice timeout vpn wifi cable port router switch firewall proxy certificate token")
_MESSAGE_TEXT = ("thanks please could you check tried again works now still same issue attached see below "
                 "any update on this we restarted it cleared cache logged out reinstalled escalated to level two "
                 "waiting for vendor closing soon confirm fixed")
FILLER = _FILLER_TEXT.split()
MESSAGE_WORDS = _MESSAGE_TEXT.split()
STATUSES = ["new"] * 10 + ["open"] * 15 + ["pending"] * 5 + ["resolved"] * 10 + ["closed"] * 60
PRIORITIES = ["low"] * 20 + ["normal"] * 50 + ["high"] * 20 + ["urgent"] * 10
TAGS = ["vip", "billing", "hardware", "network", "mobile", "onsite"]
# Most tickets have none; "legal" is rare (1 in 200), so a page of it is found far back in time.
CATEGORIES = [None] * 80 + ["Billing"] * 50 + ["Hardware"] * 35 + ["Access"] * 34 + ["Legal"]
POOL = 4000
AGENTS = 50
REQUESTERS = 2000
AGENT_CAPACITY = 8000  # about 300,000 tickets are open among 50 agents
# Mean minutes to a first reply and hours to a resolution, by priority.
FIRST_REPLY_MINUTES = {"urgent": 15, "high": 45, "normal": 120, "low": 300}
RESOLUTION_HOURS = {"urgent": 4, "high": 12, "normal": 30, "low": 72}


def ticket_id(number: int) -> uuid.UUID:
    """Return the id of ticket `number` (random-looking, yet recomputable without a lookup)."""
    return uuid.UUID(bytes=hashlib.md5(number.to_bytes(8, "big"), usedforsecurity=False).digest(), version=4)


def _descriptions(rng: random.Random) -> list[str]:
    texts = []
    for i in range(POOL):
        words = rng.choices(FILLER, k=rng.randint(12, 40))
        if i % 50 == 0:
            words.insert(rng.randrange(len(words)), "paper jam")
        elif i % 17 == 0:
            words.insert(rng.randrange(len(words)), "paper")
            words.append("jam")
        texts.append(" ".join(words))
    return texts


def _titles(rng: random.Random) -> list[str]:
    titles = []
    for i in range(POOL):
        noun = "printer" if i % 100 < 18 else "network" if i % 100 < 23 else rng.choice(NOUNS)
        titles.append(f"{rng.choice(SUBJECTS)} {noun} {rng.choice(FILLER)}")
    return titles


def _bodies(rng: random.Random) -> list[str]:
    bodies = []
    for i in range(POOL):
        words = rng.choices(MESSAGE_WORDS + FILLER, k=rng.randint(6, 30))
        if i % 10 == 0:
            words.append("screenshot")
        bodies.append(" ".join(words))
    return bodies


def raw_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def load(database_url: str, slug: str, tickets: int | None = None, messages: int | None = None,
         log=print) -> dict:
    """Fill the tenant `slug` (already provisioned and empty); return facts the queries need."""
    tickets = tickets or int(os.environ.get("BENCH_TICKETS", "1000000"))
    messages = messages if messages is not None else int(os.environ.get("BENCH_MESSAGES", str(3 * tickets)))
    schema = schema_for(slug)
    rng = random.Random(42)
    titles, descriptions, bodies = _titles(rng), _descriptions(rng), _bodies(rng)
    agents = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(AGENTS)]
    requesters = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(REQUESTERS)]
    start = time.perf_counter()
    with psycopg.connect(raw_dsn(database_url), autocommit=True) as conn:
        conn.execute(f'set search_path to "{schema}"')
        conn.execute("set maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "select indexname, indexdef from pg_indexes where schemaname = %s and tablename in ('tickets', 'messages')"
            " and indexname not in (select conname from pg_constraint)", (schema,)).fetchall()
        for name, _ in indexes:
            conn.execute(f'drop index "{name}"')
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")  # skip FK triggers during the load
            _copy_users(conn, agents, requesters)
            _copy_tickets(conn, rng, tickets, titles, descriptions, agents, requesters,
                          per_ticket=messages // tickets if messages >= tickets else 0)
            _copy_messages(conn, rng, tickets, messages, bodies, agents, requesters)
            conn.execute("select setval('ticket_number_seq', %s)", (tickets,))
        loaded = time.perf_counter()
        log(f"  copied {tickets:,} tickets and {messages:,} messages in {loaded - start:.0f} s")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("vacuum analyze tickets")
        conn.execute("vacuum analyze messages")
        log(f"  rebuilt {len(indexes)} indexes and analyzed in {time.perf_counter() - loaded:.0f} s")
    return {"tickets": tickets, "messages": messages, "agents": agents, "requesters": requesters,
            "load_seconds": time.perf_counter() - start}


def _copy_users(conn: psycopg.Connection, agents: list[uuid.UUID], requesters: list[uuid.UUID]) -> None:
    with conn.cursor().copy("copy users (id, email, name, role, capacity) from stdin") as copy:
        for i, user in enumerate(agents):
            copy.write_row((user, f"agent{i}@bench.example", f"Agent {i}", "agent", AGENT_CAPACITY))
        for i, user in enumerate(requesters):
            copy.write_row((user, f"customer{i}@bench.example", f"Customer {i}", "requester", None))


def _copy_tickets(conn, rng: random.Random, tickets: int, titles: list[str], descriptions: list[str], agents,
                  requesters, per_ticket: int) -> None:
    now = datetime.now(UTC)
    origin = now - timedelta(days=730)
    step = timedelta(days=730) / tickets
    columns = ("id, number, title, description, priority, status, category, tags, requester_id, assignee_id, "
               "created_at, updated_at, first_response_at, resolved_at, closed_at, last_message_seq")
    with conn.cursor().copy(f"copy tickets ({columns}) from stdin") as copy:
        for number in range(1, tickets + 1):
            created = origin + step * number
            status = rng.choice(STATUSES)
            priority = rng.choice(PRIORITIES)
            rare = f" ref{rng.randrange(max(1, tickets // 20)):05d}"
            tags = rng.sample(TAGS, rng.randint(0, 2))
            assignee = None if status == "new" else agents[number % AGENTS]
            replied = resolved = closed = None
            if status != "new":
                replied = min(created + timedelta(minutes=1 + rng.expovariate(1 / FIRST_REPLY_MINUTES[priority])), now)
            if status in ("resolved", "closed"):
                resolved = min(replied + timedelta(hours=rng.expovariate(1 / RESOLUTION_HOURS[priority])), now)
            if status == "closed":
                closed = min(resolved + timedelta(days=1), now)
            updated = max(t for t in (created + timedelta(hours=rng.randint(0, 72)), replied, resolved, closed) if t)
            copy.write_row((
                ticket_id(number), number, titles[rng.randrange(POOL)] + rare, descriptions[rng.randrange(POOL)],
                priority, status, rng.choice(CATEGORIES), tags, requesters[number % REQUESTERS], assignee,
                created, min(updated, now), replied, resolved, closed, per_ticket,
            ))


def _copy_messages(conn, rng: random.Random, tickets: int, messages: int, bodies: list[str], agents,
                   requesters) -> None:
    per_ticket = max(1, messages // tickets)
    origin = datetime.now(UTC) - timedelta(days=730)
    step = timedelta(days=730) / tickets
    written = 0
    with conn.cursor().copy("copy messages (id, ticket_id, seq, author_id, internal, body, created_at) "
                            "from stdin") as copy:
        for number in range(1, tickets + 1):
            if written >= messages:
                break
            owner = ticket_id(number)
            created = origin + step * number
            for seq in range(1, per_ticket + 1):
                staff = seq % 2 == 0
                copy.write_row((
                    uuid.UUID(int=rng.getrandbits(128), version=4), owner, seq,
                    agents[number % AGENTS] if staff else requesters[number % REQUESTERS],
                    staff and number % 5 == 0, bodies[rng.randrange(POOL)],
                    created + timedelta(minutes=30 * seq),
                ))
            written += per_ticket
