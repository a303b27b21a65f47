"""The request form's map: tiles only from the configured server, which the page's policy
allows and nothing else does."""

from __future__ import annotations

import pytest

from gateway.agencies import create_agency
from tests.console.test_agency_staff import staff


def _form(app):
    agency, _key = create_agency(app.extensions["gateway"], "Puskesmas Peta",
                                 ["medicine_delivery"], actor="test")
    return staff(app, agency.id).get("/console/services/medicine_delivery/new")


def test_without_a_tile_server_the_map_is_blank_and_the_policy_unchanged(app):
    page = _form(app)
    assert 'data-tiles=""' in page.get_data(as_text=True)
    assert "img-src 'self' data:;" in page.headers["Content-Security-Policy"]


def test_a_tile_server_is_allowed_by_the_policy_and_handed_to_the_map(make_app):
    app = make_app(console={"map_tiles_url": "https://{s}.tiles.example.go.id/{z}/{x}/{y}.png"})
    page = _form(app)
    assert 'data-tiles="https://{s}.tiles.example.go.id/{z}/{x}/{y}.png"' in \
        page.get_data(as_text=True)
    assert "img-src 'self' data: https://*.tiles.example.go.id;" in \
        page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("url", ["https://x.example;script-src", "https://x.example/ a",
                                 "javascript:alert(1)", "https://x.example/'unsafe-inline'"])
def test_a_tile_url_that_would_bend_the_policy_is_refused_at_start_up(make_app, url):
    with pytest.raises(Exception, match="map_tiles_url"):
        make_app(console={"map_tiles_url": url})
