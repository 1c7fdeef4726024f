"""Every model, re-exported so Alembic sees one metadata."""
from app.models.admin_key import AdminKey
from app.models.base import Base
from app.models.challenge import AuthorizationCode
from app.models.challenge import ChallengeSession
from app.models.console_session import ConsoleSession
from app.models.event import Event
from app.models.factor import Factor
from app.models.factor import PasskeyRegistration
from app.models.factor import RecoveryCode
from app.models.login_attempt import LoginAddressAttempts
from app.models.login_attempt import LoginAttempts
from app.models.refresh_token import RefreshToken
from app.models.session import AuthSession
from app.models.signing_key import SigningKey
from app.models.tenant import Tenant
from app.models.user import User
from app.models.webhook import Webhook

__all__ = ["AdminKey", "AuthSession", "AuthorizationCode", "Base", "ChallengeSession",
           "ConsoleSession", "Event", "Factor", "LoginAddressAttempts", "LoginAttempts",
           "PasskeyRegistration", "RecoveryCode", "RefreshToken", "SigningKey", "Tenant", "User",
           "Webhook"]
