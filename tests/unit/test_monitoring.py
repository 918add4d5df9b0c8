"""The exporter's Prometheus text (``mca.exporter.render``) and the Grafana dashboard shipped in
docs/grafana: every series a panel queries is one the exporter writes, so the dashboard cannot
drift from the code unnoticed; and the text parses as Prometheus reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mca.exporter import Figures, render
from mca.metrics import RayExporter
from mca.views import BATCHING_COUNTERS

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "mca-dashboard.json"


def every_series() -> Figures:
    none: tuple[tuple[str, str], ...] = ()
    counters = {name: {none: 1.0} for name, _ in RayExporter.COUNTERS}
    counters |= {name: {none: 1.0} for name in BATCHING_COUNTERS.values()}
    return Figures("mca-1", True, 2, 10, 1, 5, counters, ((0.005, 1), (float("inf"), 2)), 0.1, 3, {"echo-1": (1, 16)})


def test_the_text_parses_with_the_replica_on_every_sample() -> None:
    families = list(text_string_to_metric_families(render(every_series()).decode()))
    samples = [s for f in families for s in f.samples]
    assert samples and all(s.labels.get("replica") == "mca-1" for s in samples)
    by_name = {s.name: s for s in samples}
    assert by_name["mca_leader"].value == 1.0 and by_name["mca_read_model_lag_records"].value == 3
    assert by_name["mca_commit_latency_seconds_count"].value == 2


def test_every_series_of_the_dashboard_is_exported() -> None:
    exported = {s.name for f in text_string_to_metric_families(render(every_series()).decode()) for s in f.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmca_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exported, sorted(queried - exported)
