"""deploy/prometheus and deploy/grafana: parsed and cross-checked against the metrics module;
validated and unit-tested with promtool when it is installed (Debian package `prometheus`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hero_service.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
PROM = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")

_METRIC = re.compile(r"\b(hero_[a-z0-9_]+)\b")
_RECORDED = re.compile(r"\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b")


def exported_names() -> set[str]:
    """Every sample name the service can expose."""
    names = {"up"}
    for fam in Metrics().registry.collect():
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(fam.name)
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM / "rules.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def unknown_names(expr: str) -> set[str]:
    missing = {m for m in _RECORDED.findall(expr) if m not in recorded()}
    bare = _RECORDED.sub(" ", expr)
    known = exported_names()
    missing |= {m for m in _METRIC.findall(bare) if m not in known}
    return missing


def test_scrape_config() -> None:
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    (job,) = cfg["scrape_configs"]
    assert job["job_name"] == "hero"
    assert job["static_configs"][0]["targets"] == ["hero:8000"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    for f in cfg["rule_files"]:
        assert (PROM / f).is_file(), f


def test_rules_cover_the_issue() -> None:
    rs = rules()
    rec = recorded()
    for name in (
        "job_id:hero_verifier_fpr:ratio_rate1h",
        "job_id:hero_verifier_recall:ratio_rate1h",
        "job_id:hero_groups_collapsed:ratio_rate5m",
        "job_id_collapse:hero_groups:ratio_rate5m",
    ):
        assert name in rec
    alerts = {r["alert"]: r for r in rs if "alert" in r}
    for name in (
        "HeroCollapseRateHigh",
        "HeroVerifierTimeoutRateHigh",
        "HeroVerifierFPRHigh",
        "HeroRMQueueSaturated",
        "HeroVerifierQueueSaturated",
        "HeroOverloadRejections",
    ):
        assert name in alerts
    for name, a in alerts.items():
        assert a["labels"]["severity"] in ("warning", "critical"), name
        assert a["annotations"]["summary"] and a["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", a["for"]), name
    for r in rs:
        assert not unknown_names(r["expr"]), (r.get("record") or r.get("alert"), r["expr"])
        # the training job is `job_id`: `job` is the scrape job's label
        assert "by (job)" not in r["expr"] and "job=~" not in r["expr"]


@needs_promtool
@pytest.mark.slow  # promtool subprocesses
def test_promtool_checks_config_and_rules() -> None:
    assert PROMTOOL is not None
    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules.test.yml"],
    ):
        p = subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"promtool {' '.join(args)}:\n{p.stdout}\n{p.stderr}"


# -- Grafana ------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    out: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "hero.json").read_text())
    return out


def exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in."""
    return expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$job_id", ".*")


def test_dashboard_structure() -> None:
    d = dashboard()
    assert d["uid"] == "hero-reward-service"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    # no two panels overlap on the 24-column grid
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        cells |= mine
    variables = {v["name"] for v in d["templating"]["list"]}
    assert variables == {"datasource", "job_id"}
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for topic in (
        "false-positive",
        "recall",
        "collapse",
        "timeout",
        "weight",
        "sigma_bar",
        "batch",
        "queue",
        "latency",
        "disagreement",
    ):
        assert topic in titles, topic


def test_dashboard_queries_use_real_metrics() -> None:
    for title, e in exprs():
        assert not unknown_names(e), (title, e)


@needs_promtool
@pytest.mark.slow  # promtool subprocesses
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every panel query is valid PromQL: promtool parses them as recording rules."""
    assert PROMTOOL is not None
    doc = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dash:q{i}", "expr": concrete(e)}
                    for i, (_, e) in enumerate(exprs())
                ],
            }
        ]
    }
    f = tmp_path / "dash_rules.yml"
    f.write_text(yaml.safe_dump(doc))
    p = subprocess.run(
        [PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (src,) = ds["datasources"]
    assert src["type"] == "prometheus" and src["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "hero.yml").read_text())
    (provider,) = prov["providers"]
    # the compose file mounts deploy/grafana/dashboards at this path
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
