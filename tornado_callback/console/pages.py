"""The console's pages: each calls the service its API twin calls, with the same principal,
so that a page shows exactly what the API would answer that user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import tornado.web

from tornado_callback.admin.catalog import SUB_LISTS
from tornado_callback.admin.service import ListQuery
from tornado_callback.callback.service import simulated_request
from tornado_callback.console.session import PREFIX, SESSION_COOKIE, STATIC, ConsoleHandler
from tornado_callback.console.views import (
    ATTEMPT_FILTERS,
    attempt_outcome,
    badge,
    callback_url,
    curl_line,
    output_tail,
    some_hosts,
)
from tornado_callback.errors import ServiceError
from tornado_callback.http.values import MAX_PAGE_SIZE, api_datetime, parse_id
from tornado_callback.inventory.handlers import update_view
from tornado_callback.jobs.service import JobFilters, can_cancel, job_summary

if TYPE_CHECKING:  # the wiring imports every domain; pages only name its type
    from tornado_callback.services import Services

ATTEMPTS = next(s for s in SUB_LISTS if s.child == "callback_attempts")
PAGE_SIZE = 25
SYNCS_SHOWN = 50
MAX_EXPLAIN_HEADERS = 20


class PageHandler(ConsoleHandler):
    """A page with the console's helpers in its templates' namespace."""

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(badge=badge, attempt_outcome=attempt_outcome, some_hosts=some_hosts)
        return namespace

    @property
    def base(self) -> str:
        """This server as the browser reached it."""
        return f"{'https' if self.over_https() else 'http'}://{self.request.host}"

    def page_number(self) -> int:
        return self.page_arguments()[0]


class LoginPage(ConsoleHandler):
    needs_session = False

    def get(self) -> None:
        if self.principal is not None:
            self.redirect(self._next())
            return
        self.render("login.html", error=None, username="", next_url=self._next())

    async def post(self) -> None:
        self.check_xsrf_cookie()
        username = self.get_body_argument("username", "")
        try:
            principal = await self.services.accounts.login(
                username, self.get_body_argument("password", ""), self.client_address)
        except ServiceError as e:  # past the API's limit on failed logins (429)
            self.set_status(e.status)
            for name, value in e.headers.items():
                self.set_header(name, value)
            self.render("login.html", error=str(e), username=username, next_url=self._next())
            return
        if principal is None:
            self.render("login.html", error="Invalid username/password.", username=username,
                        next_url=self._next())
            return
        await self.start_session(principal)
        self.redirect(self._next())

    def _next(self) -> str:
        """Where the login was asked from: a console page of this server, never another site."""
        target = self.get_argument("next", PREFIX)
        return target if target.startswith(PREFIX) else PREFIX


class LogoutPage(ConsoleHandler):
    needs_session = False

    def post(self) -> None:
        self.check_xsrf_cookie()
        self.clear_cookie(SESSION_COOKIE)
        self.redirect(f"{PREFIX}login/")


class TemplatesPage(PageHandler):
    async def get(self) -> None:
        assert self.principal is not None
        query = ListQuery(page=self.page_number(), page_size=PAGE_SIZE, search=self.search_argument())
        page = await self.services.admin.list("job_templates", self.principal, query)
        rows = []
        for template in page.results:
            may_edit = await self.services.accounts.has_role(self.principal, "job_template", template["id"], "admin")
            url = callback_url(self.base, template["id"])
            rows.append({"template": template, "may_edit": may_edit, "callback_url": url,
                         "curl": curl_line(url, template["host_config_key"] if may_edit else None)})
        self.render("templates.html", rows=rows, count=page.count, query=query)


class CallbackPage(PageHandler):
    """A template's callback: its latest attempts (the audit trail's rule: template admins)."""

    async def get(self, template_ref: str) -> None:
        assert self.principal is not None
        template_id = self.object_id(template_ref)
        template = await self.services.admin.get("job_templates", self.principal, template_id)
        outcome = self.get_query_argument("outcome", "")
        host = self.get_query_argument("host", "").strip()
        chosen = ATTEMPT_FILTERS.get(outcome)
        filters = {"status_code": chosen.status_code} if chosen else {}
        if host:
            filters["host_name"] = host
        query = ListQuery(page=self.page_number(), page_size=PAGE_SIZE, filters=filters,
                          search=chosen.msg if chosen else "")
        attempts = await self.services.admin.sub_list(ATTEMPTS, self.principal, template_id, query)
        self.render("callback.html", template=template, attempts=attempts.results, count=attempts.count,
                    query=query, outcome=outcome, host=host, outcomes=ATTEMPT_FILTERS,
                    callback_url=callback_url(self.base, template_id))


class ExplainPage(PageHandler):
    """Which host a simulated request would match, and why: the callback GET, as a form.

    Posted (with the XSRF token) rather than asked by GET: an explanation runs the
    resolvers, DNS lookups among them, which another site must not make us do."""

    async def get(self, template_ref: str) -> None:
        template = await self._template(template_ref)
        self.render("explain.html", template=template, address="", headers="", explanation=None,
                    error=None, api_url=None)

    async def post(self, template_ref: str) -> None:
        self.check_xsrf_cookie()
        template = await self._template(template_ref)
        address = self.get_body_argument("address", "").strip()
        headers_text = self.get_body_argument("headers", "")
        header_lines = [line.strip() for line in headers_text.splitlines() if line.strip()][:MAX_EXPLAIN_HEADERS]
        explanation, error = None, None
        try:
            request = simulated_request(self.request.remote_ip or "", address or None, header_lines)
            explanation = await self.services.callbacks.explain(str(template["id"]), self.principal, request)
        except ServiceError as e:
            if e.status != 400:
                raise
            self.set_status(400)
            error = str(e)
        arguments = ([("address", address)] if address else []) + [("header", h) for h in header_lines]
        api_url = f"/api/v2/job_templates/{template['id']}/callback/?{urlencode(arguments)}"
        self.render("explain.html", template=template, address=address, headers=headers_text,
                    explanation=explanation, error=error, api_url=api_url)

    async def _template(self, template_ref: str) -> dict[str, Any]:
        assert self.principal is not None
        template_id = self.object_id(template_ref)
        template = await self.services.admin.get("job_templates", self.principal, template_id)
        await self.services.accounts.require_role(self.principal, "job_template", template_id, "admin")
        return template


class JobsPage(PageHandler):
    async def get(self) -> None:
        assert self.principal is not None
        query = ListQuery(page=self.page_number(), page_size=PAGE_SIZE)
        template = self.get_query_argument("job_template", "")
        filters = JobFilters(job_template=parse_id(template) if template else None,
                             status=self.get_query_argument("status", None) or None)
        count, jobs = await self.services.jobs.page(self.principal, filters, query.page, query.page_size)
        self.check_page(count, query.page, query.page_size)
        self.render("jobs.html", jobs=[job_summary(j) for j in jobs], count=count, query=query)


class JobPage(PageHandler):
    async def get(self, job_ref: str) -> None:
        assert self.principal is not None
        job = await self.services.jobs.get_for(self.principal, self.object_id(job_ref))
        output, length = output_tail(job.result_stdout or "")
        self.render("job.html", job=job_summary(job), output=output, length=length, active=can_cancel(job))


class JobOutput(ConsoleHandler):
    """What the job page's script polls: the status and the output past what it has."""

    async def get(self, job_ref: str) -> None:
        assert self.principal is not None
        job = await self.services.jobs.get_for(self.principal, self.object_id(job_ref))
        since = self.int_argument("since", 0, 0, 2**31)
        output, length = output_tail(job.result_stdout or "", since)
        self.set_header("Cache-Control", "no-store")
        self.write_json({"status": job.status, "active": can_cancel(job), "finished": api_datetime(job.finished),
                         "output": output, "length": length})

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def refuse_anonymous(self) -> None:
        """A script asks: a login page would be no answer to it (the session ended; it stops)."""
        raise tornado.web.HTTPError(403)


class SyncsPage(PageHandler):
    """The latest inventory syncs of the sources the user may see (the sources' own rule)."""

    async def get(self) -> None:
        assert self.principal is not None
        sources: dict[int, dict[str, Any]] = {}
        page, count = 1, 1
        while len(sources) < count:
            listed = await self.services.admin.list(
                "inventory_sources", self.principal, ListQuery(page=page, page_size=MAX_PAGE_SIZE))
            sources.update((s["id"], s) for s in listed.results)
            page, count = page + 1, listed.count
            if not listed.results:
                break
        updates = await self.services.inventory_sync.latest_updates(sources, SYNCS_SHOWN)
        rows = [{"update": update_view(u, sources[u.inventory_source_id]["inventory"]),
                 "source": sources[u.inventory_source_id]} for u in updates]
        self.render("syncs.html", rows=rows, shown=SYNCS_SHOWN)


class NotFoundPage(ConsoleHandler):
    needs_session = False

    def get(self) -> None:
        raise tornado.web.HTTPError(404)


PAGES = [
    (r"/console/?", TemplatesPage),
    (r"/console/login/?", LoginPage),
    (r"/console/logout/?", LogoutPage),
    (r"/console/templates/([^/]+)/?", CallbackPage),
    (r"/console/templates/([^/]+)/explain/?", ExplainPage),
    (r"/console/jobs/?", JobsPage),
    (r"/console/jobs/([^/]+)/?", JobPage),
    (r"/console/jobs/([^/]+)/output/?", JobOutput),
    (r"/console/syncs/?", SyncsPage),
]


def console_routes(services: Services) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The console's routes, to follow the API's (they add nothing to the callback's routing)."""
    args = {"services": services}
    return [
        *((pattern, handler, args) for pattern, handler in PAGES),
        (r"/console/static/(.*)", tornado.web.StaticFileHandler, {"path": STATIC}),
        (r"/console/.*", NotFoundPage, args),
    ]
