"""An agency or key operation the gateway refuses says why with a stable code, the same for
the CLI, the console and whatever else calls :mod:`gateway.agencies`."""

from __future__ import annotations

import pytest

from gateway.agencies import create_agency, issue_key, revoke_key, update_agency
from gateway.errors import Conflict, Invalid, NotFound


def test_each_refusal_names_what_went_wrong_with_a_code(app):
    gateway = app.extensions["gateway"]
    with pytest.raises(Invalid, match=r"unknown service\(s\): pizza") as refused:
        create_agency(gateway, "Dinas X", ["pizza"], actor="test")
    assert refused.value.code == "unknown_service"
    with pytest.raises(Invalid) as refused:
        create_agency(gateway, "Dinas X", ["medicine_delivery"], roles=["king"], actor="test")
    assert refused.value.code == "unknown_role"

    agency, _key = create_agency(gateway, "Dinas Y", ["medicine_delivery"], actor="test")
    with pytest.raises(Conflict, match="already exists") as refused:
        create_agency(gateway, "Dinas Y", ["medicine_delivery"], actor="test")
    assert refused.value.code == "agency_exists"

    with pytest.raises(NotFound) as refused:
        issue_key(gateway, "Dinas Nowhere", actor="test")
    assert refused.value.code == "agency_not_found"
    with pytest.raises(NotFound) as refused:
        update_agency(gateway, "no-such-id", services=[], roles=[], callback_url=None,
                      active=True, actor="test")
    assert refused.value.code == "agency_not_found"
    with pytest.raises(NotFound, match="no key with prefix") as refused:
        revoke_key(gateway, "gw_live_nothing00", actor="test")
    assert refused.value.code == "key_not_found"
