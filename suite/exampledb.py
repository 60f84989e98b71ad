"""The hypothesis example database a run uses, from one string (``torchconform fuzz --db``).

- a directory path: ``DirectoryBasedExampleDatabase`` -- every worker and campaign on this machine that
  names it shares it (hypothesis' directory database is safe for concurrent processes);
- ``redis://host:port[/db]``: ``RedisExampleDatabase`` (``pip install 'torchconform[redis]'``) -- shared by
  campaigns on several machines, which replay each other's failures first.

The child pytest processes read it from ``TORCHCONFORM_DB`` (conftest.py puts it in the dev and fuzz
profiles), so a campaign's every xdist worker uses the same database.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

ENV = "TORCHCONFORM_DB"


class DatabaseError(Exception):
    """The database cannot be used (one line naming it)."""


def is_redis(spec: str) -> bool:
    return spec.startswith(("redis://", "rediss://", "unix://"))


def example_database(spec: str, check: bool = False):
    """The database named by ``spec``; ``check``: ping a Redis server first (DatabaseError if unreachable)."""
    from hypothesis.database import DirectoryBasedExampleDatabase

    if not is_redis(spec):
        return DirectoryBasedExampleDatabase(os.path.expanduser(spec))
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as exc:
        raise DatabaseError(f"{spec}: the redis client is not installed ({exc.name}); "
                            f"pip install 'torchconform[redis]'") from None
    client = redis.Redis.from_url(spec, socket_connect_timeout=5, socket_timeout=30)
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            where = urlparse(spec).netloc or spec
            raise DatabaseError(f"example database {where} unreachable: {exc}") from None
    return RedisExampleDatabase(client)


def from_environment():
    """The database ``TORCHCONFORM_DB`` names, or None (then each profile keeps its own)."""
    spec = os.environ.get(ENV)
    return example_database(spec) if spec else None
