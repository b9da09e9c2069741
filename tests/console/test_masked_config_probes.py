"""Probe finding 1 in the console: the endpoint editor saves through the same service validation, so a designer
cannot save a lookup keyed on a column their role sees masked; an org admin can."""

from __future__ import annotations

import re

from tests.conftest import add_user
from tests.console.conftest import lookup_form, signed_in


def test_console_editor_refuses_a_designers_lookup_on_a_masked_column(app, client, admin, console, service, customers):
    designer = signed_in(app, add_user(client, admin, "designer"))
    resp = designer.post(service["url"] + "/endpoints", lookup_form(key_column="email"))
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert re.search(r"column email \(high\) is masked for your role", resp.get_data(as_text=True))
    saved = console.post(service["url"] + "/endpoints", lookup_form(key_column="email"))
    assert saved.status_code == 302, saved.get_data(as_text=True)
