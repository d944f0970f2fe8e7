"""The round report: one self-contained HTML page that tolerates missing parts."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from allocator.baselines import run_baselines
from allocator.errors import InputError
from allocator.fairness import entitlement, fairness_metrics, partner_totals
from allocator.policy import TierRule
from service.report import build_report
from service.report.plots import frontier_figure, plot_frontier
from tests.allocator.fairness_cases import random_problem

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Tags(HTMLParser):
    """Collects tags, image sources and link targets; checks that blocks are closed."""

    VOID: ClassVar[set[str]] = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag in ("a", "link", "script"):
            self.links.append(a.get("href") or a.get("src") or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def _frontier_rows() -> pd.DataFrame:
    rows = []
    for k, alpha in enumerate(np.linspace(0, 1, 6)):
        rows.append({"alpha": alpha, "label": f"alpha={alpha:g}", "is_current": False,
                     "status": "optimal", "objective": 100.0 - k**2, "yield_lost": float(k**2),
                     "yield_lost_pct": float(k**2), "floor_total": 10 * k,
                     "jain_leads": 0.8 + 0.03 * k,
                     "worst_off_share": 0.1 * k, "tier_share[gold]": 0.5 - 0.02 * k,
                     "tier_share[silver]": 0.5 + 0.02 * k, "message": ""})
    rows[-1].update(status="infeasible", objective=np.nan, yield_lost=np.nan,
                    yield_lost_pct=np.nan, jain_leads=np.nan, message="floors need 90 leads")
    rows.append({"alpha": np.nan, "label": "current policy", "is_current": True,
                 "status": "optimal", "objective": 99.0, "yield_lost": 1.0, "yield_lost_pct": 1.0,
                 "floor_total": 8, "jain_leads": 0.82, "worst_off_share": 0.05, "message": ""})
    return pd.DataFrame(rows)


def _write_round(root: Path, with_frontier: bool = True) -> Path:
    """A round folder as `fairlead allocate` writes it, from real metrics of a small round."""
    problem = random_problem(7, 120, 12, 3, tiers=(TierRule("gold", 0.2, 0.6),))
    base = run_baselines(problem)
    chosen = base.pop("greedy")  # stands in for the optimizer's assignment: only data here
    leads, exp = partner_totals(problem, chosen)
    ent = entitlement(problem)
    fair = fairness_metrics(problem, chosen).to_dict()
    summary = {
        "status": "optimal", "objective": fair["expected_total"],
        "bound": fair["expected_total"], "gap": 0.0,
        "verification": {"ok": True, "violations": []},
        "fairness": {"optimizer": fair},
        "baselines": {name: {"expected_conversions": fairness_metrics(problem, lp).expected_total,
                             "fairness": fairness_metrics(problem, lp).to_dict()}
                      for name, lp in base.items()},
        "partners": [{"partner_id": str(problem.partner_ids[j]),
                      "tier": str(problem.partner_tier[j]), "leads": int(leads[j]),
                      "expected_conversions": float(exp[j]), "entitlement": float(ent[j])}
                     for j in range(problem.n_partners)],
        "rules": [{"rule": "cap[partner=P3]", "kind": "cap", "binding": True, "limit": 9,
                   "used": 9, "price": 0.31, "price_source": "flow potentials",
                   "description": "P3's capacity of 9 leads was full <b>now</b>"},
                  {"rule": "floor[partner=P1]", "kind": "floor", "binding": False, "limit": 2,
                   "used": 5, "price": 0.0, "price_source": "flow potentials",
                   "description": "P1 received 5"}],
        "held_back": [{"lead_id": "X1", "reason": "qualification score below 40"},
                      {"lead_id": "X2", "reason": "qualification score below 40"},
                      {"lead_id": "X3", "reason": "no partner covers region <APAC>"}],
        "timings": {"solve": 0.12},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    pd.DataFrame({
        "lead_id": problem.lead_ids,
        "partner_id": [problem.partner_ids[j] if j >= 0 else None for j in chosen],
        "score": 0.5, "reason": "best score",
    }).to_csv(root / "assignments.csv", index=False)
    if with_frontier:
        frame = _frontier_rows()
        frame.to_csv(root / "frontier.csv", index=False)
        plot_frontier(frame, root / "frontier.png")
    return root


def test_full_report_is_self_contained(tmp_path):
    path = build_report(_write_round(tmp_path / "round"))
    assert path == tmp_path / "round" / "report.html"
    page = _parse(path)
    html = path.read_text(encoding="utf-8")
    assert "script" not in page.tags and page.links == []
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)
    # methods, frontier, tier shares along the frontier, partners, tiers
    assert len(page.imgs) == 5
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    text = " ".join(" ".join(page.text).split())
    for words in ("round robin", "current policy ★", "infeasible", "floors need 90 leads",
                  "cap[partner=P3]", "qualification score below 40", "Leads held back"):
        assert words in text
    assert "not computed" not in text.lower()


def test_text_from_the_files_is_escaped(tmp_path):
    html = build_report(_write_round(tmp_path / "r")).read_text(encoding="utf-8")
    assert "<b>now</b>" not in html and "&lt;b&gt;now&lt;/b&gt;" in html
    assert "&lt;APAC&gt;" in html


def test_held_back_counts_by_reason(tmp_path):
    html = build_report(_write_round(tmp_path / "r")).read_text(encoding="utf-8")
    row = re.search(r"qualification score below 40</td><td>(\d+)</td>", html)
    assert row is not None and row.group(1) == "2"


def test_missing_parts_say_not_computed(tmp_path):
    root = tmp_path / "bare"
    root.mkdir()
    (root / "summary.json").write_text(json.dumps({"status": "optimal", "objective": 12.5}))
    page = _parse(build_report(root))
    text = " ".join(" ".join(page.text).split())
    for words in ("Baselines not computed", "Frontier not computed", "Per-partner figures not "
                  "computed", "Tier shares not computed", "Rule prices not computed",
                  "Held-back leads not recorded"):
        assert words in text
    assert "12.5" in text
    assert page.imgs == []


def test_frontier_png_alone_is_embedded(tmp_path):
    root = _write_round(tmp_path / "r")
    (root / "frontier.csv").unlink()
    page = _parse(build_report(root))
    png = base64.b64encode((root / "frontier.png").read_bytes()).decode()
    assert f"data:image/png;base64,{png}" in page.imgs


def test_no_summary_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"no summary\.json; run `fairlead allocate"):
        build_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2")
    with pytest.raises(InputError, match=r"summary\.json is not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must hold a JSON object"):
        build_report(tmp_path)


def test_frontier_figure_marks_current_policy_and_failed_points():
    fig = frontier_figure(_frontier_rows())
    ax1, ax2 = fig.axes
    legend1, legend2 = ax1.get_legend(), ax2.get_legend()
    assert legend1 is not None and legend2 is not None
    labels = [t.get_text() for t in legend1.get_texts()]
    assert any("no allocation (infeasible)" in lab for lab in labels)
    assert "current policy" in [t.get_text() for t in ax1.texts]
    assert "current policy" in [t.get_text() for t in legend2.get_texts()]


def test_report_of_a_real_round_with_its_frontier(tmp_path):
    """`fairlead allocate` output plus `fairlead frontier` output make one full page."""
    from allocator.build import build_problem
    from allocator.frontier import compute_frontier
    from allocator.policy import policy_from_dict
    from models.simulate import simulate_channel
    from service.pipeline import run_round, score_round, write_round

    channel = simulate_channel(n_partners=12, n_leads=200, n_history=0, seed=8)
    leads = channel.leads.assign(effort=1.0)
    policy = policy_from_dict({"fairness": {"partner_floor": 2},
                               "tiers": {"gold": {"min_share": 0.1}}})
    root = tmp_path / "round"
    write_round(run_round(channel.partners, leads, policy), root)
    scored = score_round(channel.partners, leads, policy)
    problem = build_problem(scored.pairs, scored.values, scored.leads, channel.partners, policy)
    frontier = compute_frontier(problem, alphas=[0.0, 0.5, 1.0], expected=scored.probability)
    frontier.to_frame().to_csv(root / "frontier.csv", index=False)

    page = _parse(build_report(root))
    text = " ".join(" ".join(page.text).split())
    assert "not computed" not in text.lower()
    assert "current policy ★" in text and "round robin" in text
    assert len(page.imgs) == 5
    summary = json.loads((root / "summary.json").read_text())
    assert f"{summary['counts']['assigned']} leads placed of {summary['counts']['in_round']}" \
        in text


def test_report_command(tmp_path):
    from typer.testing import CliRunner

    from service.cli.main import app

    root = _write_round(tmp_path / "r", with_frontier=False)
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--round", str(root), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["report"] == str(root / "report.html")
    res = runner.invoke(app, ["report", "--round", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no summary.json" in res.output
