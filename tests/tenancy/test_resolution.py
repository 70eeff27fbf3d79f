"""Tenant resolution: path prefix, subdomain, unknown and suspended tenants."""

from app import create_app
from tests.helpers import app_config


def test_unknown_tenant_is_404(client):
    assert client.get("/t/no-such-org/login").status_code == 404
    assert client.get("/t/no-such-org/").status_code == 404


def test_subdomain_and_path_prefix_serve_the_same_tenant(services, tenant):
    app = create_app(app_config(services, SERVER_NAME_FOR_TENANTS="desk.example"))
    client = app.test_client()
    by_host = client.get("/login", headers={"Host": f"{tenant.slug}.desk.example"})
    by_path = client.get(f"/t/{tenant.slug}/login")
    assert by_host.status_code == by_path.status_code == 200
    assert client.get("/login", headers={"Host": "nobody.desk.example"}).status_code == 404
    assert client.get("/login", headers={"Host": "desk.example"}).status_code == 404


def test_suspended_tenant_is_404_everywhere_until_reactivated(app, tenant):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["tenants", "suspend", tenant.slug]).exit_code == 0
    assert app.test_client().get(f"/t/{tenant.slug}/login").status_code == 404
    assert tenant.api.get("/api/v1/users").status_code == 404
    assert runner.invoke(args=["tenants", "suspend", tenant.slug, "--undo"]).exit_code == 0
    assert tenant.api.get("/api/v1/users").status_code == 200


def test_api_path_naming_another_tenant_is_404(app, make_tenant):
    a, b = make_tenant(), make_tenant()
    headers = {"Authorization": f"Bearer {a.key}"}
    assert app.test_client().get(f"/t/{a.slug}/api/v1/users", headers=headers).status_code == 200
    assert app.test_client().get(f"/t/{b.slug}/api/v1/users", headers=headers).status_code == 404


def test_active_tenants_of_some_slugs_are_only_those_that_are_active(app, make_tenant):
    from tenants import active_tenants

    one, two, other = make_tenant(), make_tenant(), make_tenant()
    assert app.test_cli_runner().invoke(args=["tenants", "suspend", two.slug]).exit_code == 0
    with app.app_context():
        assert [t.slug for t in active_tenants({one.slug, two.slug, "no-such-tenant"})] == [one.slug]
        assert {one.slug, other.slug} <= {t.slug for t in active_tenants()}


def test_a_host_header_that_is_not_a_host_name_is_400_on_every_kind_of_path(client, tenant):
    """Werkzeug refuses such a Host before routing; the error page then had no URL adapter to link with: 500.

    Pages answer plain text; the API and the health probes, JSON endpoints, answer the contract's shape.
    """
    for host in ("a..b", "x" * 64 + ".example", ".", ".."):
        for path in ("/", "/signup", "/nope", f"/t/{tenant.slug}/login", "/static/css/app.css"):
            resp = client.get(path, headers={"Host": host})
            assert resp.status_code == 400 and resp.mimetype == "text/plain", (host, path, resp.status_code)
            assert resp.get_data(as_text=True).startswith("400 Bad Request")
        for path in ("/healthz", "/readyz", "/api/v1/users"):
            resp = client.get(path, headers={"Host": host, "Authorization": f"Bearer {tenant.key}"})
            assert resp.status_code == 400 and resp.mimetype == "application/json", (host, path)
            assert resp.get_json()["code"] == 400 and resp.get_json()["status"] == "Bad Request"


def test_health_probes_answer_their_errors_as_json(client):
    for method, status in (("post", 405), ("put", 405), ("delete", 405)):
        for path in ("/healthz", "/readyz"):
            resp = getattr(client, method)(path)
            assert resp.status_code == status and resp.mimetype == "application/json", (method, path)
            assert resp.get_json()["code"] == status and resp.headers["Allow"]
    assert client.get("/healthz/").status_code == 404  # not a probe: a page path, answered as pages are
