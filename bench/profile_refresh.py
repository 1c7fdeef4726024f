"""Where the time of one refresh goes: `python -m bench.profile_refresh [N]`.

Runs N chained refreshes in-process through Flask's test client (the whole request path
except the HTTP server) against a fresh bench database, under cProfile, and prints the
functions with the most cumulative and own time, plus the SQL statements of one refresh.
"""
from __future__ import annotations

import cProfile
import logging
import pstats
import sys
from datetime import datetime
from datetime import timezone

from sqlalchemy import event

from bench import servers


def main(n: int = 2000) -> None:
    import config
    from app import create_app
    from app.extensions import db
    from app.services import tenants
    from app.services import users
    from flask_migrate import upgrade

    url = servers.recreate_database(servers.server_url())
    app = create_app(config.ProductionConfig, {
        "SECRET_KEY": servers.random_secret(), "SQLALCHEMY_DATABASE_URI": config.psycopg2_url(url)})
    now = datetime.now(timezone.utc)
    with app.app_context():
        upgrade()
        tenants.create_tenant(tenants.TenantSettings("bench", "Bench"), now)
        users.create_user("bench", "u0", "bench password", now)
        db.session.remove()
    logging.getLogger("app").setLevel(logging.WARNING)  # keep the output to the profile
    client = app.test_client()
    token = client.post("/v1/tenants/bench/token", data={
        "grant_type": "password", "username": "u0", "password": "bench password"}
    ).get_json()["refresh_token"]

    def refresh(token: str) -> str:
        response = client.post("/v1/tenants/bench/token", data={
            "grant_type": "refresh_token", "refresh_token": token})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["refresh_token"]

    with app.app_context():
        seen: list[str] = []
        listener = lambda c, cur, stmt, *a: seen.append(" ".join(stmt.split())[:100])  # noqa
        event.listen(db.engine, "before_cursor_execute", listener)
        token = refresh(token)
        event.remove(db.engine, "before_cursor_execute", listener)
    print("SQL statements of one refresh (BEGIN/COMMIT are implicit):")
    for statement in seen:
        print("  ", statement)

    for _ in range(200):  # warm up caches
        token = refresh(token)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        token = refresh(token)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(f"\n{n} refreshes: {total / n * 1000:.3f} ms of Python per refresh in this process")
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
