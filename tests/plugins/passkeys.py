"""Fixtures of the passkey tests (SPEC §13.5): the acme tenant with passkeys for ORIGIN and
its user alice, the Passkeys client, a software authenticator, and alice enrolled with it.
(Each passkey test module keeps its own `admin_key`: the suite's conftest has one for a
tenant without passkeys.)"""
from __future__ import annotations

import pytest

from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.passkey_helpers import Passkeys
from tests.soft_authenticator import SoftAuthenticator


@pytest.fixture
def acme(app) -> str:
    with app.app_context():
        make_tenant("acme", "Acme", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
        make_user("acme", "alice", PASSWORD)
    return "acme"


@pytest.fixture
def pk(client, acme) -> Passkeys:
    return Passkeys(client)


@pytest.fixture
def device() -> SoftAuthenticator:
    return SoftAuthenticator(ORIGIN)


@pytest.fixture
def alice(pk, device) -> dict:
    """alice, signed in with her password (no second factor yet), then with a passkey."""
    tokens = pk.sign_in()
    registered = pk.enrol(tokens["access_token"], device)
    return {"tokens": tokens, "factor": registered}
