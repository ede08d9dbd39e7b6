"""/metrics: the Prometheus text format, for scrapers (README, "Metrics").

Served unless ``metrics`` is off (404 then); with ``metrics_token`` set, only to
``Authorization: Bearer TOKEN``. The counters and histograms are this server's
(every process's, summed); the job table's gauges are read from the database now.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST

from tornado_callback.errors import DETAIL_NOT_FOUND, DETAIL_UNAUTHENTICATED
from tornado_callback.http.base import APIError, APIHandler
from tornado_callback.http.routes import Endpoint, Operation
from tornado_callback.telemetry import metrics

BEARER = "Bearer "


class MetricsHandler(APIHandler):
    async def get(self) -> None:
        settings = self.services.settings
        if not settings.metrics:
            raise APIError(404, {"detail": DETAIL_NOT_FOUND})
        if settings.metrics_token and not self._bearer_matches(settings.metrics_token):
            raise APIError(401, {"detail": DETAIL_UNAUTHENTICATED})
        stats = await self.services.jobs.table_stats()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(metrics.page() + metrics.job_table_page(stats.jobs_by_status, stats.oldest_pending_seconds))

    def _bearer_matches(self, token: str) -> bool:
        given = self.request.headers.get("Authorization", "")
        if not given.startswith(BEARER):
            return False
        return hmac.compare_digest(given[len(BEARER):].encode("utf-8", "surrogatepass"), token.encode())


endpoints = [
    Endpoint("/metrics", MetricsHandler, (
        Operation("GET", "Prometheus metrics, in the text format (with metrics_token: Authorization: Bearer)",
                  200, authenticated=False, errors=(401, 404), plain_text=True),)),
]
