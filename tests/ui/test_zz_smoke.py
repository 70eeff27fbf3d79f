import re
def test_smoke(help_desk, sign_in):
    hd = help_desk
    hd.ticket_for(hd.requester, "Printer on fire", priority="high")
    admin = sign_in(hd.admin)
    for path in ("", "?period=7", "?status=new&priority=high&sort=-priority", "/people", "/teams", "/rules", "/api-keys", "/webhooks", "/media", "/audit"):
        r = admin.get(f"/t/{hd.slug}/admin{path}")
        assert r.status_code == 200, (path, r.data.decode()[:3000])
    r = admin.get(f"/t/{hd.slug}/admin/export?format=csv")
    assert r.status_code == 200 and b"Printer on fire" in r.data
