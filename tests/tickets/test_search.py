"""Full-text search with `q`: what it matches, how it ranks, which plan it picks, and that it never errors."""

from __future__ import annotations

import inspect
import uuid
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from app.conversation.models import Message
from app.tickets import search
from tests import helpers


def _search(api, q: str, **params) -> dict:
    resp = api.get("/api/v1/tickets?" + urlencode({"q": q, **params}))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _ids(body: dict) -> list[str]:
    return [t["id"] for t in body["items"]]


@pytest.mark.parametrize(("q", "expected"), [
    ("printer", "'printer'"),
    ("Printer TONER", "'printer' & 'toner'"),
    ('"paper jam" tray', "( 'paper' <-> 'jam' ) & 'tray'"),
    ("print*", "'print':*"),
    ("printer -laser", "'printer' & !'laser'"),
    ("printer OR scanner", "( 'printer' | 'scanner' )"),
    ("e-mail", "( 'e-mail' <-> 'e' <-> 'mail' )"),
    ("e-ma*", "( 'e' <-> 'ma':* )"),
    ('"printer on fire"', "( 'printer' <2> 'fire' )"),
    ("john.smith@example.com", "'john.smith@example.com'"),
    ("ΟΔΟΣ", "'οδοσ'"),
    ("it's & | ! :* ( )", None),  # stop words and operators: no term
    ("-only -negative", None),
    ("c* -ca*", "'c':* & !'ca':*"),
    ("c* -c*", None),
    ("cat* -cats*", None),  # the same stem
    ("ca* -c*", None),  # every word ca* finds starts with c
    ("printer* -print*", None),
    ("cat OR cat -cat", None),
    ("c* OR c* -c*", None),
    ("print* -printer*", "'print':* & !'printer':*"),  # print, printing... still match
    ("cat OR dog -cat", "( 'cat' | 'dog' ) & !'cat'"),
    ("printer OR scanner OR copier", "( 'printer' | 'scanner' | 'copier' )"),
    ("the -printer", None),  # a stop word is no term: an exclusion alone
    ("a OR -b", None),
    ("!!! ::: ***", None),
    ("", None),
])
def test_query_text_is_what_postgres_makes_of_each_term(app, q, expected):
    """Each term is read by Postgres's own parser and dictionary, as the stored text was; only the
    operators between terms are ours."""
    from app.extensions import db

    with app.app_context():
        assert search.searchable(db.session, q) == expected


@pytest.mark.parametrize("text", ["john.smith@example.com", "mail.example.com", "printer01.corp.local",
                                  "192.168.1.10", "2.4.1", "3.14", "report.pdf", "ΟΔΟΣ", "İSTANBUL"])
def test_searching_for_exactly_what_a_ticket_says_finds_it(tenant, new_ticket, text):
    """Words were split in Python (`john.smith@example.com` became four words in a phrase), where Postgres
    keeps an address, a host, a version or a file name as one term; and Python lowercased `ΟΔΟΣ` and
    `İSTANBUL` otherwise than Postgres does. Such searches found nothing."""
    made = new_ticket("Cannot log in", description=f"Customer wrote about {text} this morning")
    new_ticket("Other", description="nothing of the kind")
    for params in ({"q": text}, {"q": f'"{text}"'}, {"q": text, "sort": "relevance"}):
        assert _ids(_search(tenant.api, **params)) == [made["id"]], params
    exported = tenant.api.get("/api/v1/tickets/export?" + urlencode({"q": text, "format": "json"})).get_json()
    assert [t["id"] for t in exported] == [made["id"]]


def test_a_stop_word_does_not_turn_an_exclusion_into_a_search(tenant, new_ticket):
    """`-printer` alone finds nothing by design; `the -printer` found every ticket without "printer"."""
    new_ticket("printer on fire")
    new_ticket("screen broken")
    for q in ("-printer", "the -printer", "a OR -printer", "OR -printer"):
        assert _ids(_search(tenant.api, q)) == [], q


@pytest.mark.parametrize("q", ["!!", "&|", "a:*b", "((", '"unterminated', "\\", "':*", "a <-> b", "OR", "-",
                               "'; drop table tickets; --", "ünïcödé*", "a" * 200])
def test_no_query_string_makes_search_fail(tenant, new_ticket, q):
    new_ticket("anything")
    resp = tenant.api.get("/api/v1/tickets?" + urlencode({"q": q}))
    assert resp.status_code == 200, resp.get_json()


def test_matches_title_description_and_message_bodies(tenant, new_ticket, add_message):
    by_title = new_ticket("Printer on fire")
    by_body = new_ticket("Hardware", description="the printer is smoking")
    by_message = new_ticket("Other")
    add_message(tenant, by_message, "Also my printer makes noises")
    new_ticket("Unrelated", description="keyboard")
    body = _search(tenant.api, "printer", sort="relevance")
    assert set(_ids(body)) == {by_title["id"], by_body["id"], by_message["id"]}
    assert body["order"] == "relevance"
    assert _ids(body)[0] == by_title["id"]  # title words weigh most


def test_a_search_without_a_sort_is_newest_first_as_every_list(tenant, new_ticket):
    """The contract's default sort holds with `q` too; ranking is asked for with `sort=relevance`."""
    by_title = new_ticket("Printer on fire")
    by_body = new_ticket("Hardware", description="the printer is smoking " + "and more words " * 50)
    body = _search(tenant.api, "printer")
    assert (body["order"], _ids(body)) == ("-created_at", [by_body["id"], by_title["id"]])
    ranked = _search(tenant.api, "printer", sort="relevance")
    assert (ranked["order"], _ids(ranked)) == ("relevance", [by_title["id"], by_body["id"]])
    # relevance without a search has nothing to rank: newest first, on both read paths
    for path in ("/api/v1/tickets?sort=relevance", "/api/v1/tickets?sort=relevance&status=new"):
        plain = tenant.api.get(path).get_json()
        assert (plain["order"], _ids(plain)) == ("-created_at", [by_body["id"], by_title["id"]])


def test_search_is_language_aware_with_phrases_and_prefixes(tenant, new_ticket):
    printing = new_ticket("Printing fails", description="paper jam in tray two")
    jammed = new_ticket("Jam", description="the paper tray is jammed")
    assert set(_ids(_search(tenant.api, "printed"))) == {printing["id"]}
    assert set(_ids(_search(tenant.api, '"paper jam"'))) == {printing["id"]}
    assert set(_ids(_search(tenant.api, "paper jam"))) == {printing["id"], jammed["id"]}
    assert set(_ids(_search(tenant.api, "pri*"))) == {printing["id"]}
    assert set(_ids(_search(tenant.api, "paper -printing"))) == {jammed["id"]}


def test_internal_notes_and_deleted_messages_are_not_searchable_by_requesters(tenant, new_ticket, add_message,
                                                                               in_tenant):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket("My issue", api=requester)
    add_message(tenant, ticket, "escalate to zebrafish team", internal=True)
    add_message(tenant, ticket, "mentions walrus")
    with in_tenant(tenant) as session:
        session.execute(sa.update(Message).where(Message.body == "mentions walrus")
                        .values(deleted_at=sa.func.now()))
        session.commit()
    assert _ids(_search(tenant.api, "zebrafish")) == [ticket["id"]]
    assert _ids(_search(requester, "zebrafish")) == []
    assert _ids(_search(tenant.api, "walrus")) == []


def test_search_combines_with_filters_and_an_explicit_sort(tenant, new_ticket):
    old = new_ticket("router broken", priority="high")
    new = new_ticket("router slow", priority="low")
    new_ticket("router gone", priority="normal")
    body = _search(tenant.api, "router", sort="created_at", priority="high,low")
    assert (_ids(body), body["order"]) == ([old["id"], new["id"]], "created_at")


def _plans(monkeypatch, window: int, rank_up_to: int) -> None:
    monkeypatch.setattr(search, "WALK_WINDOW", window)
    monkeypatch.setattr(search, "RANK_UP_TO", rank_up_to)


@pytest.mark.parametrize(("window", "rank_up_to", "order", "plan"), [
    (1, 100, "relevance", "r"),  # few matches: ranked
    (1, 2, "-created_at", "s"),  # more than RANK_UP_TO, not a page among the newest: the set sorted
    (1000, 2, "-created_at", "w"),  # more than RANK_UP_TO, a page among the newest: walked
    (1000, 100, "relevance", "r"),  # few matches rank even when a page of them is among the newest
])
def test_plan_follows_how_many_match_and_every_plan_pages_the_same_set(
        tenant, new_ticket, add_message, monkeypatch, window, rank_up_to, order, plan):
    matching = [new_ticket(f"modem {i}") for i in range(5)]
    via_message = new_ticket("quiet")
    add_message(tenant, via_message, "the modem again")
    new_ticket("unrelated")
    _plans(monkeypatch, window, rank_up_to)
    first = _search(tenant.api, "modem", limit=2, sort="relevance")
    assert first["order"] == order
    assert first["next_cursor"].startswith(plan + ".")
    items, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = _search(tenant.api, "modem", limit=2, cursor=cursor, sort="relevance")
        assert page["order"] == order
        items += page["items"]
        cursor = page["next_cursor"]
    ids = [t["id"] for t in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == {t["id"] for t in [*matching, via_message]}
    if order == "-created_at":
        assert [t["created_at"] for t in items] == sorted((t["created_at"] for t in items), reverse=True)


def test_a_staff_search_of_few_matches_sorts_them_without_walking_the_newest(tenant, new_ticket, monkeypatch):
    """The walk of the newest tickets reads every ticket a filter keeps until it has `WALK_WINDOW` of them:
    with `status=new&priority=urgent` at a million tickets, a term that matched nothing took 450 ms.
    Few matches (counted up to `RANK_UP_TO`) are sorted at once; a requester's own tickets are still walked."""
    _plans(monkeypatch, 1000, 3)
    requester = tenant.key_for(tenant.user("requester"))
    few = [new_ticket(f"toner {i}", api=requester) for i in range(3)]
    staff = _search(tenant.api, "toner", limit=2)
    assert staff["next_cursor"].startswith("s.") and staff["order"] == "-created_at"
    rest = _search(tenant.api, "toner", limit=2, cursor=staff["next_cursor"])
    assert _ids(staff) + _ids(rest) == [t["id"] for t in reversed(few)]
    assert _search(requester, "toner", limit=2)["next_cursor"].startswith("w.")
    new_ticket("toner 3")  # four now match: more than RANK_UP_TO, and a page is among the newest
    assert _search(tenant.api, "toner", limit=2)["next_cursor"].startswith("w.")


def test_a_common_term_is_counted_once_a_minute_for_staff_and_each_time_for_a_requester(
        tenant, new_ticket, monkeypatch):
    _plans(monkeypatch, 1000, 2)
    requester = tenant.key_for(tenant.user("requester"))
    for i in range(4):
        new_ticket(f"cable {i}", api=requester)
    counts = []
    real = search.count_matches_up_to
    monkeypatch.setattr(search, "count_matches_up_to", lambda *a, **k: counts.append(1) or real(*a, **k))
    for sort in ("-created_at", "relevance", "priority"):
        assert _search(tenant.api, "cable", sort=sort)["order"] == ("-created_at" if sort == "relevance" else sort)
    assert len(counts) == 1
    for _ in range(2):
        assert _search(requester, "cable", sort="relevance")["order"] == "-created_at"
    assert len(counts) == 3
    monkeypatch.setattr(search.COMMON_TERMS, "known", lambda value: False)  # a minute later
    _search(tenant.api, "cable")
    assert len(counts) == 4


def test_a_slug_signed_up_again_inherits_nothing_remembered_of_the_tenant_dropped(app, make_tenant, monkeypatch):
    """What a process remembers of common terms is keyed by the tenant's id: a new tenant on a dropped
    tenant's slug must not be answered (nor learn) from the old one's tickets."""
    from app.extensions import db
    from tenants.provisioning import drop_outside_data, drop_tenant

    monkeypatch.setattr(search, "RANK_UP_TO", 2)
    slug = f"t{uuid.uuid4().hex[:10]}"
    old = make_tenant(slug)
    for n in range(3):
        helpers.new_ticket(old.api, f"layoffs {n}")
    assert _search(old.api, "layoffs", sort="relevance")["order"] == "-created_at"  # remembered as common
    with app.app_context():
        dropped = drop_tenant(slug)
        db.session.commit()
        drop_outside_data(dropped)
    new = make_tenant(slug)
    helpers.new_ticket(new.api, "layoffs plan")
    assert _search(new.api, "layoffs", sort="relevance")["order"] == "relevance"


def test_a_common_term_is_walked_newest_first_and_a_sparse_one_ranked(tenant, new_ticket, monkeypatch):
    monkeypatch.setattr(search, "WALK_WINDOW", 6)
    monkeypatch.setattr(search, "RANK_UP_TO", 5)  # "email" matches more than that
    for i in range(4):
        new_ticket(f"filler {i}")
    rare = new_ticket("fax machine")
    common = [new_ticket(f"email {i}") for i in range(6)]
    walked = _search(tenant.api, "email", limit=3, sort="relevance")
    assert walked["order"] == "-created_at"
    assert _ids(walked) == [t["id"] for t in reversed(common)][:3]
    ranked = _search(tenant.api, "fax", limit=3, sort="relevance")
    assert (ranked["order"], _ids(ranked)) == ("relevance", [rare["id"]])


def test_a_cursor_keeps_its_plan_when_the_counts_change(tenant, new_ticket, monkeypatch):
    for i in range(4):
        new_ticket(f"switch {i}")
    _plans(monkeypatch, 1, 100)
    first = _search(tenant.api, "switch", limit=2, sort="relevance")
    assert first["order"] == "relevance"
    _plans(monkeypatch, 1000, 0)  # a fresh search would now walk the date index
    assert _search(tenant.api, "switch", limit=2, sort="relevance")["order"] == "-created_at"
    rest = _search(tenant.api, "switch", limit=2, cursor=first["next_cursor"], sort="relevance")
    assert rest["order"] == "relevance"
    assert len({t["id"] for t in first["items"] + rest["items"]}) == 4


def test_a_search_cursor_is_not_a_list_cursor(tenant, new_ticket):
    for i in range(3):
        new_ticket(f"lamp {i}")
    cursor = _search(tenant.api, "lamp", limit=1)["next_cursor"]
    assert tenant.api.get("/api/v1/tickets?" + urlencode({"cursor": cursor})).status_code == 422
    plain = tenant.api.get("/api/v1/tickets?limit=1").get_json()["next_cursor"]
    assert tenant.api.get("/api/v1/tickets?" + urlencode({"cursor": plain, "q": "lamp"})).status_code == 422


@pytest.mark.parametrize("other", ["number", "-priority", "created_at", "-updated_at"])
def test_a_relevance_cursor_is_refused_in_another_order(tenant, new_ticket, monkeypatch, other):
    """Its pages rank: sent with another `sort`, it went on by relevance and the order asked for was lost."""
    for i in range(3):
        new_ticket(f"printer jam {i}")
    _plans(monkeypatch, 1, 100)
    first = _search(tenant.api, "printer jam", limit=1, sort="relevance")
    assert first["order"] == "relevance" and first["next_cursor"]
    refused = tenant.api.get("/api/v1/tickets?" + urlencode({"q": "printer jam", "sort": other,
                                                             "cursor": first["next_cursor"]}))
    assert refused.status_code == 422 and "cursor" in refused.get_json()["errors"], refused.get_json()
    assert _search(tenant.api, "printer jam", limit=1, cursor=first["next_cursor"], sort="relevance")["order"] == (
        "relevance")


def test_a_search_over_its_time_limit_answers_503(app, tenant, new_ticket, monkeypatch):
    new_ticket("slow")

    def slow_count(session, *args, **kwargs):
        return session.execute(sa.text("select 1 from pg_sleep(2)")).scalar_one()

    monkeypatch.setattr(search, "count_matches_up_to", slow_count)
    monkeypatch.setitem(app.config, "SEARCH_STATEMENT_TIMEOUT_MS", 50)
    resp = tenant.api.get("/api/v1/tickets?q=slow&sort=relevance")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert tenant.api.get(f"/api/v1/tickets/{uuid.uuid4()}").status_code == 404  # the app carries on


def test_search_without_words_finds_nothing(tenant, new_ticket):
    new_ticket("the")
    body = _search(tenant.api, "-the")
    assert (body["items"], body["next_cursor"]) == ([], None)


@pytest.mark.parametrize("plan", ["ranked", "sorted set"])
def test_a_requesters_search_reads_only_the_matches_of_their_own_tickets(tenant, monkeypatch, plan):
    """Every subquery that reads matches is limited to the requester's tickets. The ranked and sorted-set
    plans read every match of the organization: with 50,000 others' matches, ranking took 25.5 ms, 0.7 now."""
    from tests.helpers import new_ticket as create

    requester = tenant.user("requester")
    api = tenant.key_for(requester)
    mine = create(api, "my modem")
    for n in range(3):
        create(tenant.api, f"their modem {n}")
    _plans(monkeypatch, 0, 10_000 if plan == "ranked" else 0)  # no walk: rank, or sort the matching set
    limits = []
    for name in ("ticket_hits", "message_hits"):
        real = getattr(search, name)

        def spy(*args, real=real, **kwargs):
            limits.append(inspect.signature(real).bind(*args, **kwargs).arguments.get("visible"))
            return real(*args, **kwargs)

        monkeypatch.setattr(search, name, spy)
    assert _ids(_search(api, "modem", sort="relevance")) == [mine["id"]]
    assert limits and all(limit is not None for limit in limits)
    limits.clear()
    assert len(_ids(_search(tenant.api, "modem", sort="relevance"))) == 4  # staff read every match
    assert limits and all(limit is None for limit in limits)


def test_one_organizations_searches_never_take_the_process_and_others_search_on(
        app, tenant, other_tenant, new_ticket, monkeypatch):
    """Each organization runs at most SEARCH_CONCURRENCY_PER_TENANT searches at once in a process."""
    import threading

    from app.tickets import listing
    from tenants import active_tenant, current_tenant

    new_ticket("printer")
    other_tenant.api.post("/api/v1/tickets", json={"title": "printer"})
    monkeypatch.setitem(app.config, "SEARCH_CONCURRENCY_PER_TENANT", 2)
    started, release = threading.Semaphore(0), threading.Event()
    search_page = listing._search

    def held(session, actor, *args, **kwargs):
        if current_tenant().id == tenant_id:  # this organization's searches hold their connection
            started.release()
            release.wait(30)
        return search_page(session, actor, *args, **kwargs)

    with app.app_context():
        tenant_id = str(active_tenant(tenant.slug).id)
    monkeypatch.setattr(listing, "_search", held)
    answers = []
    running = [threading.Thread(target=lambda: answers.append(_search(tenant.api, "printer"))) for _ in range(2)]
    for thread in running:
        thread.start()
    for _ in running:
        assert started.acquire(timeout=30)
    refused = tenant.api.get("/api/v1/tickets?q=printer")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "2 searches running" in refused.get_json()["message"]
    assert tenant.api.get("/api/v1/tickets").status_code == 200  # lists without q are not searches
    assert len(_ids(_search(other_tenant.api, "printer"))) == 1  # another organization searches on
    release.set()
    for thread in running:
        thread.join(30)
    assert [len(_ids(a)) for a in answers] == [1, 1]
    assert len(_ids(_search(tenant.api, "printer"))) == 1  # the slots came back


@pytest.mark.parametrize(("q", "finds"), [
    ("c* -c*", False), ("cat* -cats*", False), ("running* -run*", False), ('"paper jam" -"paper jam"', False),
    ("printer -printer toner", False), ("printer -Printers", False),
    ("the -the printer", True), ("printer -laser", True), ("a OR -a printer", True), ("c* -ca", True),
])
def test_a_query_holding_a_term_and_its_own_negation_is_not_run(tenant, new_ticket, monkeypatch, q, finds):
    """It matches nothing, yet made Postgres recheck every row of both tables (terms compared once stemmed)."""
    from app.tickets import listing

    new_ticket("printer cat running paper jam c toner")
    ran = []
    search_page = listing._search
    monkeypatch.setattr(listing, "_search", lambda *args, **kwargs: ran.append(1) or search_page(*args, **kwargs))
    assert bool(_ids(_search(tenant.api, q))) is finds and bool(ran) is finds
    exported = tenant.api.get("/api/v1/tickets/export?" + urlencode({"format": "json", "q": q}))
    assert exported.status_code == 200 and bool(exported.get_json()) is finds
