"""A listener of SQLAlchemy's cursor events, written as OpenTelemetry's SQLAlchemy
instrumentation writes its own, sees every statement of a callback, the hot path's
included, and does not break it (tornado_callback/store/driver.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, event, select

from tests.conftest import basic_auth, plugins_config_for
from tornado_callback.store.models import Job

pytestmark = pytest.mark.gen_test

CALLBACK = "/api/v2/job_templates/{}/callback/"
HOSTS = {"web1": {"ansible_host": "10.0.0.7"}, "web2": {"ansible_host": "10.0.0.8"}}


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32"]})


@dataclass
class Span:
    statement: str
    database: str
    ended: bool = False


@dataclass
class Tracer:
    """OpenTelemetry's shape: the span begun before a statement is kept on the execution
    context and ended after it; the engine's URL names the database."""

    engines: tuple[Engine, ...]
    spans: list[Span] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # an after without its before

    def before(self, conn, cursor, statement, parameters, context, executemany):
        span = Span(re.sub(r"\s+", " ", statement).strip(), conn.engine.url.get_backend_name())
        context._tracer_span = span
        self.spans.append(span)

    def after(self, conn, cursor, statement, parameters, context, executemany):
        span = getattr(context, "_tracer_span", None)
        if span is None or span.ended:
            self.unmatched.append(statement)
        else:
            span.ended = True

    def listen(self):
        """On every engine, as ``SQLAlchemyInstrumentor().instrument(engine=...)`` puts its listener."""
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self.before)
            event.listen(engine, "after_cursor_execute", self.after)

    def stop(self):
        for engine in self.engines:
            for name, listener in (("before_cursor_execute", self.before), ("after_cursor_execute", self.after)):
                if event.contains(engine, name, listener):
                    event.remove(engine, name, listener)

    def statements(self):
        return [span.statement for span in self.spans]


@pytest.fixture
def tracer(services):
    """A Tracer listening on the server's engines."""
    tracer = Tracer(services.db.sync_engines)
    tracer.listen()
    yield tracer
    tracer.stop()


def assert_consistent(tracer, backend):
    assert tracer.spans, "the listener saw no statement"
    assert tracer.unmatched == []
    assert [s.statement for s in tracer.spans if not s.ended] == []
    assert {span.database for span in tracer.spans} == {backend}


def host_lookups(statements):
    return [s for s in statements if s.startswith("SELECT") and "JOIN host_keys" in s]


async def post(fetch, world, address):
    return await fetch(CALLBACK.format(world.template_id), method="POST",
                       headers={"Content-Type": "application/json", "X-Forwarded-For": address},
                       body=json.dumps({"host_config_key": world.key}))


async def test_a_post_that_launches_a_job_is_traced_statement_by_statement(fetch, seed, services, tracer):
    world = await seed(HOSTS)
    tracer.spans.clear()
    response = await post(fetch, world, "10.0.0.7")
    assert response.code == 202, response.body
    job_id = json.loads(response.body)["job"]

    backend = services.db.engine.dialect.name
    assert_consistent(tracer, backend)
    statements = tracer.statements()
    # The hot path's statements, run on the driver when nobody listens, are all seen.
    assert host_lookups(statements)
    assert any(s.startswith("INSERT INTO jobs") for s in statements), statements
    assert any(s.startswith("INSERT INTO callback_attempts") for s in statements), statements
    if backend == "sqlite":  # the writer's group commit: its transaction and each unit's savepoint
        assert {"BEGIN IMMEDIATE", "SAVEPOINT unit", "RELEASE unit"} <= set(statements), statements
    # Commits are driver calls, not statements: no listener of statements sees one (driver.py).
    assert not [s for s in statements if s.startswith("COMMIT")]

    def status(db):
        return db.scalar(select(Job.__table__.c.status).where(Job.__table__.c.id == job_id))

    assert await services.db.read(status) == "pending"


async def test_a_listener_counts_from_when_it_is_added_until_it_is_removed(fetch, seed, tracer):
    world = await seed({f"web{i}": {"ansible_host": f"10.0.1.{i}"} for i in range(3)})
    tracer.stop()
    assert (await post(fetch, world, "10.0.1.0")).code == 202  # the server's connections are open
    tracer.listen()
    assert (await post(fetch, world, "10.0.1.1")).code == 202
    seen = tracer.statements()
    assert host_lookups(seen) and any(s.startswith("INSERT INTO jobs") for s in seen), seen
    tracer.stop()
    assert (await post(fetch, world, "10.0.1.2")).code == 202
    assert tracer.statements() == seen


async def test_a_get_that_explains_is_traced(fetch, seed, services, tracer):
    await services.accounts.create_user("root", "rootpass", superuser=True)
    world = await seed(HOSTS)
    tracer.spans.clear()
    response = await fetch(CALLBACK.format(world.template_id),
                           headers={**basic_auth("root", "rootpass"), "X-Forwarded-For": "10.0.0.8"})
    assert response.code == 200, response.body
    assert json.loads(response.body)["matching_hosts"] == ["web2"]
    assert_consistent(tracer, services.db.engine.dialect.name)
    assert host_lookups(tracer.statements())
