"""Answer shapes both blueprints show (the user's own API and the admin API): a session and
a second factor. Defined once here, so neither blueprint imports the other."""
from __future__ import annotations

from typing import Annotated
from typing import Literal

from pydantic import ConfigDict
from pydantic import Field

from app.http.models import AnswerModel
from app.http.models import Timestamp
from app.http.models import described
from app.http.models import example
from app.services.accounts import factors

SESSION_ID = "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11"
Amr = Annotated[tuple[str, ...], Field(description="RFC 8176 methods of the sign-in: `pwd`, "
                                                   "`otp`, `pop`, `mfa`.", examples=[["pwd"]])]


class SessionFields(AnswerModel):
    """A live session (SPEC §4.2, §13.4): when it started and was last used, how it signed in."""

    model_config = ConfigDict(from_attributes=True)

    id: Annotated[str, described(format="uuid")] = Field(description="Session id.")
    created_at: Timestamp
    last_used_at: Timestamp
    expires_at: Timestamp = Field(description="Absolute end of the session.")
    user_agent: str | None
    amr: Amr
    auth_time: Timestamp | None = Field(description="When the user signed in (kept by every "
                                                    "refresh).")
    client_id: str | None = Field(description="The tenant's app that signed the user in, if "
                                              "the challenge named one.")


FACTOR_EXAMPLE = {"id": "7", "type": "totp", "name": "phone",
                  "created_at": "2026-01-05T09:30:00+00:00",
                  "last_used_at": "2026-01-06T08:00:12+00:00"}


class Factor(AnswerModel):
    """A second factor (SPEC §13.2): never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Factor id.")
    type: Literal["totp", "passkey"]
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None


class FactorList(AnswerModel):
    """A user's active second factors and how many recovery codes are left."""

    model_config = ConfigDict(json_schema_extra=example(
        {"factors": [FACTOR_EXAMPLE], "recovery_codes_left": 10}))

    factors: list[Factor]
    recovery_codes_left: int


def factor_list(listing: factors.FactorList) -> FactorList:
    """The answer for what the factors service lists."""
    return FactorList(
        factors=[Factor.model_validate({"id": str(f.id), "type": f.type, "name": f.name,
                                        "created_at": f.created_at,
                                        "last_used_at": f.last_used_at})
                 for f in listing.factors],
        recovery_codes_left=listing.recovery_codes_left)
