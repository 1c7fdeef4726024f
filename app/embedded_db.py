"""The embedded default database: a PostgreSQL from the `pgserver` wheel (SPEC §2).

Each process that calls `embedded_database_url` holds a handle; pgserver stops
the server when the last handle is released, so `make run` stops it on Ctrl-C.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from config import ConfigurationError


def embedded_database_url(pgdata: str, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or join) the embedded server at `pgdata` and return its SQLAlchemy URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine.
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            # A production install (`make install-prod`) leaves the embedded database out.
            raise ConfigurationError(
                "no DATABASE_URL and no embedded PostgreSQL: set DATABASE_URL, or install "
                "the embedded one with `make install` (pip install -e '.[embedded]')") from None

        path = Path(pgdata)
        path.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(path, cleanup_mode=cleanup_mode)
    return "postgresql+psycopg2://" + server.get_uri().split("://", 1)[1]
