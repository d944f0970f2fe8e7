"""Real-time routing between rounds: the decision rule, prices, capacity, and a replay."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.problem import Allocation, AllocationProblem
from allocator.realtime import PriorSample, RealtimeRouter, RouteDecision, choose, dual_prices

IDS = ("P0", "P1", "P2", "P3", "P4", "P5", "P6", "P7")


def _router(**kw: object) -> RealtimeRouter:
    price = np.zeros(8)
    price[3], price[7] = 0.05, 0.12
    return RealtimeRouter(IDS, np.full(8, 2.0), price, **kw)  # type: ignore[arg-type]


def test_price_decides_and_reason_names_it() -> None:
    d = _router().route({3: 0.21, 7: 0.25})
    assert d.partner == 3 and d.partner_id == "P3" and d.runner_up == 7
    assert d.adjusted_value == pytest.approx(0.16)
    assert d.runner_up_adjusted_value == pytest.approx(0.13)
    assert d.reason == "routed to P3: score 0.21 − price 0.05 = 0.16 beats P7: 0.25 − 0.12 = 0.13"


def test_greedy_ignores_prices() -> None:
    r = RealtimeRouter(IDS, np.full(8, 2.0), rule="greedy")
    d = r.route(np.array([3, 7]), np.array([0.21, 0.25]))
    assert d.partner == 7 and d.price == 0.0
    assert d.reason.startswith("routed to P7: score 0.25 beats P3: 0.21 (greedy")


def test_partner_ids_as_mapping_keys() -> None:
    d = _router().route({"P3": 0.21, "P7": 0.25})
    assert d.partner_id == "P3"
    with pytest.raises(KeyError, match="Unknown partner 'P9'"):
        _router().route({"P9": 0.5})


def test_hold_when_capacity_is_worth_more() -> None:
    r = _router()
    d = r.route({3: 0.04, 7: 0.10})
    assert not d.routed and d.runner_up == 3
    assert d.reason.startswith("held for the next round: best is P3: 0.04 − 0.05 = -0.01")
    assert r.remaining.sum() == 16.0 and r.n_routed == 0 and r.n_seen == 1
    lenient = _router(hold_when_negative=False)
    assert lenient.route({3: 0.04, 7: 0.10}).partner == 3


def test_capacity_is_never_exceeded_and_full_partners_are_named() -> None:
    r = RealtimeRouter(IDS[:2], [1, 2])
    got = [r.route({0: 0.9, 1: 0.5}).partner for _ in range(4)]
    assert got == [0, 1, 1, None]
    assert r.remaining.tolist() == [0.0, 0.0]
    last = r.route({0: 0.9, 1: 0.5})
    assert last.reason == ("held for the next round: none of its 2 eligible partners has room "
                           "left (P0, P1)")
    assert r.route({}).reason == "held for the next round: the lead has no eligible partner"


def test_only_partner_with_room_and_units() -> None:
    r = RealtimeRouter(IDS[:2], [1.5, 3.0])
    d = r.route({0: 0.9, 1: 0.5}, units=2.0)
    assert d.partner == 1
    assert d.reason.endswith("the only one of its 2 eligible partners with room")
    assert r.remaining.tolist() == [1.5, 1.0]


def test_exclude_release_and_preview() -> None:
    r = _router()
    d = r.route({3: 0.21, 7: 0.25}, exclude=[3])
    assert d.partner == 7
    preview = r.route({3: 0.5}, commit=False)
    assert preview.partner == 3 and r.remaining[3] == 2.0 and r.n_seen == 1
    r.take(3)
    assert r.remaining[3] == 1.0
    r.release(7)
    assert r.remaining[7] == 2.0 and r.n_routed == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.array([0, 1]), np.array([0.1])), "1-D of equal length"),
        ((np.array([0, 8]), np.array([0.1, 0.2])), "Partner index 8 is out of range"),
        ((np.array([0]), np.array([np.nan])), "must be finite"),
        ((np.array([0]), None), "needs 'scores'"),
    ],
)
def test_route_rejects_bad_leads(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _router().route(*args)


def test_constructor_rejects_bad_partner_vectors() -> None:
    with pytest.raises(ValueError, match=r"The 'capacity' of partner index 1 must be a finite "
                                         r"number ≥ 0. Got -2.0 instead"):
        RealtimeRouter(("A", "B"), [1, -2])
    with pytest.raises(ValueError, match=r"The 'price' must have one value per partner \(2\)"):
        RealtimeRouter(("A", "B"), [1, 2], [0.1])
    with pytest.raises(ValueError, match="'rule' must be 'primal_dual' or 'greedy'"):
        RealtimeRouter(("A",), [1], rule="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without 'expected_arrivals'"):
        RealtimeRouter(("A",), [1]).reprice()


def _dual_value(pl, pp, ps, cap, price) -> float:
    """Dual objective Σ cap·λ + Σ_i max(0, max_j s_ij − λ_j) of the capacity LP."""
    adj = ps - price[pp]
    best = np.zeros(pl.max() + 1)
    np.maximum.at(best, pl, adj)
    return float(cap @ price + best.sum())


def test_dual_prices_are_optimal_duals() -> None:
    rng = np.random.default_rng(3)
    n, m = 60, 5
    pl = np.repeat(np.arange(n), 3)
    pp = np.concatenate([rng.choice(m, 3, replace=False) for _ in range(n)])
    ps = rng.random(pl.shape[0])
    cap = np.array([3.0, 5.0, 8.0, 2.0, 6.0])
    d = dual_prices(pl, pp, ps, cap)
    assert (d.price >= 0).all() and d.n_leads == n and d.n_pairs == 3 * n
    # strong duality: the prices reach the LP value, so they are optimal duals
    assert _dual_value(pl, pp, ps, cap, d.price) == pytest.approx(d.objective, abs=1e-7)
    # scarce capacity is priced: every partner is full
    assert (d.price > 0).all()


def test_tiny_price_is_hand_checkable() -> None:
    # one seat, leads worth 0.5 and 0.3: the seat is worth between 0.3 and 0.5
    d = dual_prices(np.array([0, 1]), np.array([0, 0]), np.array([0.5, 0.3]), np.array([1.0]))
    assert d.objective == pytest.approx(0.5)
    assert 0.3 - 1e-9 <= d.price[0] <= 0.5 + 1e-9
    # room for both: capacity is free
    d2 = dual_prices(np.array([0, 1]), np.array([0, 0]), np.array([0.5, 0.3]), np.array([2.0]))
    assert d2.price[0] == 0.0 and d2.objective == pytest.approx(0.8)


def test_floor_makes_price_negative_and_routes_to_owed_partner() -> None:
    # one lead, A scores 0.5 and B 0.2; B is owed one lead
    pl, pp, ps = np.array([0, 0]), np.array([0, 1]), np.array([0.5, 0.2])
    d = dual_prices(pl, pp, ps, np.array([1.0, 1.0]), floor=np.array([0.0, 1.0]))
    assert d.objective == pytest.approx(0.2)
    assert d.price[1] < 0
    r = RealtimeRouter(("A", "B"), [1, 1], d.price, floor_owed=[0, 1])
    dec = r.route({0: 0.5, 1: 0.2})
    assert dec.partner_id == "B"
    assert r.floor_owed.tolist() == [0.0, 0.0]


def _day(
    rng: np.random.Generator, n: int, m: int, skill: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = 4
    parts = [rng.choice(m, k, replace=False) for _ in range(n)]
    pl = np.repeat(np.arange(n), k)
    pp = np.concatenate(parts)
    q = rng.normal(-1.5, 0.9, n)
    ps = 1 / (1 + np.exp(-(q[pl] + skill[pp] + rng.normal(0, 0.3, pl.shape[0]))))
    return pl, pp, ps


def _replay(router: RealtimeRouter, pl, pp, ps) -> float:
    total = 0.0
    n = int(pl.max()) + 1
    for i in range(n):
        sel = pl == i
        d = router.route(pp[sel], ps[sel], elapsed=(i + 0.5) / n)
        total += d.score if d.partner is not None and d.score is not None else 0.0
    return total


def test_replay_beats_greedy_and_nears_the_offline_bound() -> None:
    rng = np.random.default_rng(11)
    n, m = 600, 12
    skill = rng.normal(0, 0.7, m)
    cap = np.maximum(1, np.round(0.4 * n * np.exp(-0.5 * skill) / np.exp(-0.5 * skill).sum()))
    yesterday = _day(rng, n, m, skill)
    price = dual_prices(*yesterday, cap).price
    today = _day(rng, n, m, skill)
    bound = dual_prices(*today, cap).objective  # LP value ≥ the integral hindsight optimum
    ids = [f"P{j}" for j in range(m)]
    rt = RealtimeRouter(ids, cap, price, expected_arrivals=n)
    realtime = _replay(rt, *today)
    greedy = _replay(RealtimeRouter(ids, cap, rule="greedy"), *today)
    assert len(rt.reprices) >= 5
    assert (rt.remaining >= 0).all()
    assert realtime >= 0.92 * bound
    assert greedy < 0.9 * realtime


def test_repricing_saves_scarce_capacity_for_leads_that_need_it() -> None:
    # A has 12 seats; "H" leads gain 0.6 from A over B, "L" leads only 0.1.  With no
    # prices at the start, the first re-solve prices A's seats so L leads go to B.
    def day(router: RealtimeRouter) -> tuple[float, list[str | None]]:
        total, late_l = 0.0, []
        for i in range(40):
            h = i % 2 == 0
            d = router.route({0: 0.9, 1: 0.3} if h else {0: 0.6, 1: 0.5})
            total += d.score or 0.0
            if not h and i >= 4:
                late_l.append(d.partner_id)
        return total, late_l

    rt = RealtimeRouter(("A", "B"), [12, 100], expected_arrivals=40, first_reprice_fraction=0.1)
    value, late = day(rt)
    greedy, _ = day(RealtimeRouter(("A", "B"), [12, 100], rule="greedy"))
    assert rt.reprices and rt.reprices[0].n_leads == 4
    assert set(late) == {"B"}
    assert rt.price[0] > 0.1
    # A: 2 H and 2 L before the first price, then only H; offline would give A 12 H (23.2)
    assert value == pytest.approx(10 * 0.9 + 2 * 0.6 + 10 * 0.3 + 18 * 0.5)
    assert greedy == pytest.approx(6 * 0.9 + 6 * 0.6 + 14 * 0.3 + 14 * 0.5)
    assert value > greedy + 1.0


def test_manual_reprice_and_remaining_estimate() -> None:
    r = RealtimeRouter(("A", "B"), [5, 5], expected_arrivals=100, auto_reprice=False)
    for i in range(30):
        r.route({0: 0.6, 1: 0.4}, elapsed=0.1 * (i + 1) / 30)
    assert not r.reprices and r.reprice_due
    # 30 arrivals in 10% of the day: busier than the forecast of 100
    assert r.expected_remaining() == pytest.approx((100 * 0.1 + 30) / 0.2 * 0.9)
    res = r.reprice()
    assert r.reprices == [res] and not r.reprice_due
    assert np.array_equal(r.price, res.price)


def test_from_allocation_uses_round_prices() -> None:
    problem = AllocationProblem(
        lead_ids=np.array(["L0", "L1"]), lead_intent=np.array(["", ""]),
        partner_ids=np.array(["P3", "P7"]), partner_tier=np.array(["gold", "gold"]),
        capacity_units=np.array([4.0, 6.0]), floor=np.array([0, 0]),
        pair_lead=np.array([0, 1]), pair_partner=np.array([0, 1]),
        pair_score=np.array([0.2, 0.3]), round_size=2)
    alloc = Allocation(status="optimal", lead_partner=np.array([0, 1]),
                       lead_pair=np.array([0, 1]), objective=0.5, bound=0.5, gap=0.0,
                       method="min_cost_flow", partner_price=np.array([0.05, 0.12]))
    r = RealtimeRouter.from_allocation(problem, alloc, expected_arrivals=50)
    assert r.partner_ids == ("P3", "P7")
    assert r.price.tolist() == [0.05, 0.12] and r.remaining.tolist() == [4.0, 6.0]
    assert r.route({"P3": 0.21, "P7": 0.25}).partner_id == "P3"
    assert r.prior is not None and r.prior.n_leads == 2 and r.expected_arrivals == 50
    # the round's leads are the prior sample and, by default, the forecast
    default = RealtimeRouter.from_allocation(problem, alloc, capacity=[1, 1])
    assert default.expected_arrivals == 2 and default.remaining.tolist() == [1.0, 1.0]
    assert RealtimeRouter.from_allocation(problem, alloc, round_as_prior=False).prior is None


def test_prior_sample_steadies_early_prices_and_fades_out() -> None:
    # yesterday: 200 leads that all want A (1 seat per 10 leads) over B
    n = 200
    prior = PriorSample(np.repeat(np.arange(n), 2), np.tile([0, 1], n),
                        np.tile([0.9, 0.3], n))
    assert prior.n_leads == n
    r = RealtimeRouter(("A", "B"), [20, 500], expected_arrivals=200, prior=prior,
                       first_reprice_fraction=0.05, max_sample_leads=250)
    for _ in range(10):
        r.route({0: 0.9, 1: 0.3})
    first = r.reprices[0]
    # 10 of today's leads + 200 of yesterday's: A is scarce, so it is priced at the gap
    assert first.n_leads == 210
    assert r.price[0] == pytest.approx(0.6, abs=1e-6)
    today_only = RealtimeRouter(("A", "B"), [20, 500], expected_arrivals=200,
                                first_reprice_fraction=0.05)
    for _ in range(10):
        today_only.route({0: 0.9, 1: 0.3})
    assert today_only.reprices[0].n_leads == 10
    for _ in range(190):
        r.route({0: 0.9, 1: 0.3})
    # the sample holds at most 250 leads: today's first, topped up from the prior
    assert r.reprices[-1].n_leads == 250
    with pytest.raises(ValueError, match=r"prior sample names partner indices outside 0\.\.1"):
        RealtimeRouter(("A", "B"), [1, 1], prior=PriorSample(np.array([0]), np.array([2]),
                                                              np.array([0.5])))


def test_concurrent_routing_never_overfills() -> None:
    r = RealtimeRouter(IDS, np.full(8, 25.0))
    parts, scores = np.arange(8), np.linspace(0.1, 0.8, 8)

    def work() -> None:
        for _ in range(100):
            r.route(parts, scores)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.remaining.tolist() == [0.0] * 8 and r.n_routed == 200 and r.n_seen == 400


def test_choose_is_pure() -> None:
    price = np.array([0.0, 0.1])
    d = choose(np.array([0, 1]), np.array([0.3, 0.5]), price, np.array([True, True]), ("A", "B"))
    assert d.partner_id == "B" and d.adjusted_value == pytest.approx(0.4)
    assert price.tolist() == [0.0, 0.1]


@settings(max_examples=60, deadline=None)
@given(
    cap=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    price=st.lists(st.floats(-0.5, 0.5), min_size=6, max_size=6),
    leads=st.lists(st.dictionaries(st.integers(0, 5), st.floats(0.0, 1.0), max_size=6),
                   max_size=25),
)
def test_every_decision_is_the_best_partner_with_room(
    cap: list[int], price: list[float], leads: list[dict[int, float]]
) -> None:
    m = len(cap)
    ids = [f"P{j}" for j in range(m)]
    r = RealtimeRouter(ids, cap, price[:m])
    for lead in leads:
        lead = {j: s for j, s in lead.items() if j < m}
        room_before = r.remaining.copy()
        d = r.route(lead)
        adj = {j: s - r.price[j] for j, s in lead.items() if room_before[j] >= 1}
        if d.partner is None:
            # held: no partner with room is worth more than its price (to float noise)
            assert not adj or max(adj.values()) <= 1e-12
        else:
            assert room_before[d.partner] >= 1
            assert d.adjusted_value is not None and d.adjusted_value > 0
            assert d.adjusted_value == pytest.approx(max(adj.values()))
    assert (r.remaining >= 0).all()
    assert r.received.sum() == pytest.approx(sum(cap) - r.remaining.sum())


def test_decisions_go_on_at_the_old_prices_while_a_reprice_solves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``reprice()`` (a service's background job) solves without the decisions' lock."""
    import allocator.realtime as realtime

    solving, release = threading.Event(), threading.Event()
    solve = realtime.dual_prices

    def slow_solve(*args: object, **kwargs: object) -> object:
        solving.set()
        assert release.wait(30)
        return solve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(realtime, "dual_prices", slow_solve)
    r = _router(expected_arrivals=20, auto_reprice=False)
    for _ in range(3):
        r.route({3: 0.21, 7: 0.25})
    assert r.reprice_due
    old = r.price.copy()
    worker = threading.Thread(target=r.reprice)
    worker.start()
    decided: list[RouteDecision] = []
    decider = threading.Thread(target=lambda: decided.append(r.route({3: 0.21, 7: 0.25},
                                                                     commit=False)))
    try:
        assert solving.wait(30)
        decider.start()
        decider.join(10)  # a solve holding the decisions' lock would keep it waiting
        during_solve = list(decided)
    finally:
        release.set()
        worker.join(30)
        decider.join(30)
    assert len(during_solve) == 1
    d = during_solve[0]
    assert d.partner is not None and d.price == old[d.partner]
    assert not worker.is_alive() and len(r.reprices) == 1 and not r.reprice_due
