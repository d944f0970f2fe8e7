"""The synthetic world behind :mod:`models.simulate`: geography, partners, leads, history.

Everything here draws observed columns in the data contract's dtypes from a
numpy ``Generator``; the conversion formula and the latent truth live in
:mod:`models.simulate`.  Per-partner loops are fine (partners number in the
thousands); everything per lead or per pair is vectorized.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from allocator.eligibility import Eligibility, find_eligible_pairs
from allocator.policy import DEFAULT_POLICY_TOML, Policy, policy_from_dict

_STR = pd.StringDtype("pyarrow", na_value=np.nan)

# region -> (country, share of the region's leads); region shares of all leads below
REGIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "NA": (("US", 0.80), ("CA", 0.20)),
    "EMEA": (("GB", 0.13), ("DE", 0.13), ("FR", 0.09), ("NL", 0.05), ("ES", 0.05), ("IT", 0.05),
             ("SE", 0.03), ("CH", 0.03), ("PL", 0.03), ("BE", 0.03), ("AT", 0.02), ("DK", 0.02),
             ("NO", 0.02), ("FI", 0.02), ("IE", 0.02), ("PT", 0.02), ("CZ", 0.02), ("TR", 0.03),
             ("AE", 0.03), ("SA", 0.03), ("IL", 0.02), ("QA", 0.01), ("EG", 0.02), ("ZA", 0.03),
             ("KE", 0.01), ("MA", 0.01), ("NG", 0.02)),
    "APAC": (("JP", 0.18), ("AU", 0.15), ("IN", 0.15), ("SG", 0.08), ("KR", 0.08), ("ID", 0.05),
             ("NZ", 0.04), ("MY", 0.04), ("PH", 0.03), ("VN", 0.03), ("TH", 0.04), ("TW", 0.05),
             ("HK", 0.05), ("PK", 0.02), ("BD", 0.01)),
    "LATAM": (("BR", 0.34), ("MX", 0.28), ("AR", 0.09), ("CL", 0.08), ("CO", 0.08), ("PE", 0.05),
              ("UY", 0.02), ("CR", 0.02), ("PA", 0.02), ("EC", 0.02)),
}
REGION_SHARES = {"NA": 0.30, "EMEA": 0.34, "APAC": 0.22, "LATAM": 0.14}
UNCOVERED_COUNTRIES = ("CO", "PE")  # listed by no partner, and LATAM has no region-wide partner
THIN_COUNTRIES = ("NG",)  # listed by no partner, reached only by EMEA-wide partners
VERTICALS = ("manufacturing", "healthcare", "financial_services", "retail", "public_sector",
             "education", "technology", "energy")
VERTICAL_SHARES = (0.18, 0.14, 0.16, 0.12, 0.10, 0.07, 0.16, 0.07)
PRODUCTS = ("security", "networking", "cloud", "storage", "analytics", "collaboration")
PRODUCT_SHARES = (0.24, 0.20, 0.22, 0.12, 0.10, 0.12)  # of leads naming a product
CERT_POPULARITY = (0.22, 0.22, 0.20, 0.14, 0.08, 0.14)  # analytics: few partners certified
TIERS = ("platinum", "gold", "silver", "bronze")
TIER_SHARES = (0.05, 0.15, 0.30, 0.50)
TIER_CAPACITY_WEIGHT = (8.0, 4.0, 2.0, 1.0)
TIER_REGION_WIDE = (0.9, 0.5, 0.15, 0.04)  # chance of covering a whole region, small channel
TIER_EXTRA_COUNTRIES = (3.0, 2.0, 1.0, 0.5)  # mean countries beyond the first, small channel
TIER_CERTS = ((3, 5), (1, 3), (1, 1), (1, 1))  # how many products a partner is certified for
COUNTRY_SPREAD = 0.1  # partners pick countries ∝ share**0.1: big markets get fewer per lead
MARKET_SPREAD = 0.6  # capacity ∝ tier weight × (demand per partner in its territory)**0.6
ROUND_START = pd.Timestamp("2025-06-02", tz="UTC")
ROUND_DAYS = 7.0
HISTORY_DAYS = 365.0
_FIRST = ("Ana", "Ben", "Chen", "Dara", "Elif", "Femi", "Goran", "Hana", "Ivan", "Jia", "Kofi",
          "Lena", "Mateo", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma",
          "Viktor", "Wen", "Yara", "Zoe")
_LAST = ("Silva", "Smith", "Wang", "Okafor", "Meyer", "Garcia", "Kim", "Novak", "Rossi", "Tanaka",
         "Dubois", "Khan", "Larsen", "Mendes", "Nguyen", "Patel", "Schmidt", "Cohen", "Ortiz",
         "Kowalski", "Haddad", "Sato", "Jensen", "Ivanova", "Reyes")
_NAME_A = ("Apex", "Blue", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iron",
           "Juniper", "Keystone", "Lumen", "Meridian", "North", "Orbit", "Pine", "Quartz",
           "River", "Summit", "Tidal", "Union", "Vertex", "Willow", "Zenith")
_NAME_B = ("Systems", "Networks", "IT", "Solutions", "Group", "Consulting", "Technologies",
           "Partners", "Digital", "Integration", "Services", "Labs")


def default_policy(honor_account_owner: bool = True) -> Policy:
    """The default policy (``DEFAULT_POLICY_TOML``), optionally without the owner rule."""
    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
    return replace(policy, honor_account_owner=honor_account_owner)


def eligible(partners: pd.DataFrame, leads: pd.DataFrame, honor_account_owner: bool) -> Eligibility:
    """Eligibility under the default policy, as an allocation round would see it."""
    return find_eligible_pairs(partners, leads, default_policy(honor_account_owner))


def codes(values: pd.Series, vocab: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``vocab``; -1 for missing or unknown."""
    return pd.Index(vocab).get_indexer(pd.Index(values)).astype(np.int64)


def certification_table(certifications: pd.Series) -> np.ndarray:
    """Partners × :data:`PRODUCTS`: whether the partner is certified for the product."""
    cells = list(certifications)
    table = np.zeros((len(cells), len(PRODUCTS)), dtype=bool)
    rows = np.repeat(np.arange(len(cells)), [len(c) for c in cells])
    cols = codes(pd.Series([t for c in cells for t in c], dtype=object), PRODUCTS)
    table[rows[cols >= 0], cols[cols >= 0]] = True
    return table


def _exact_counts(n: int, shares: tuple[float, ...]) -> np.ndarray:
    """Split ``n`` by ``shares`` exactly (largest remainder), so proportions hold at any size."""
    raw = np.asarray(shares) * n
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _pick_many(rng: np.random.Generator, items: tuple[str, ...], weights: np.ndarray,
               k: np.ndarray, allowed: np.ndarray | None = None) -> list[tuple[str, ...]]:
    """Per row, ``k[row]`` distinct items drawn ∝ ``weights`` (Gumbel top-k), sorted by name.

    ``allowed`` (rows × items, bool) restricts each row's choice; rows get
    fewer items when fewer are allowed.
    """
    keys = np.log(weights)[None, :] + rng.gumbel(size=(len(k), len(items)))
    if allowed is not None:
        keys = np.where(allowed, keys, -np.inf)
    order = np.argsort(-keys, axis=1, kind="stable")
    n_ok = (np.isfinite(keys)).sum(axis=1)
    names = np.asarray(items, dtype=object)
    return [tuple(sorted(names[row[: min(int(kk), int(m))]].tolist()))
            for row, kk, m in zip(order, k, n_ok, strict=True)]


COUNTRIES: tuple[tuple[str, str, float], ...] = tuple(
    (c, r, REGION_SHARES[r] * w) for r, cs in REGIONS.items() for c, w in cs)
"""(country, region, share of all leads) for every country."""


def _territories(rng: np.random.Generator, tier: np.ndarray, region_wide: float,
                 extra: float) -> list[tuple[str, ...]]:
    """Each partner's ``regions``: a whole region, or a first country and a few near it."""
    n = len(tier)
    wide_regions = tuple(r for r in REGIONS if r != "LATAM")  # nobody covers LATAM whole
    wide_share = np.array([REGION_SHARES[r] for r in wide_regions])
    is_wide = rng.random(n) < np.asarray(TIER_REGION_WIDE)[tier] * region_wide
    n_wide = 1 + ((tier == 0) & (rng.random(n) < 0.3))
    wide = _pick_many(rng, wide_regions, wide_share, n_wide)
    listed = [c for c in COUNTRIES if c[0] not in UNCOVERED_COUNTRIES + THIN_COUNTRIES]
    names = tuple(c for c, _, _ in listed)
    weight = np.array([w for *_, w in listed]) ** COUNTRY_SPREAD
    first = rng.choice(len(listed), size=n, p=weight / weight.sum())
    region = np.array([r for _, r, _ in listed])
    near = (region[None, :] == region[first][:, None]) & (np.arange(len(listed)) != first[:, None])
    more = _pick_many(rng, names, weight, rng.poisson(np.asarray(TIER_EXTRA_COUNTRIES)[tier]
                                                      * extra), allowed=near)
    return [wide[j] if is_wide[j] else tuple(sorted((names[first[j]], *more[j])))
            for j in range(n)]


def _market(regions: list[tuple[str, ...]]) -> np.ndarray:
    """Per partner: leads per round its territory brings, shared among the partners covering it."""
    share = {c: w for c, _, w in COUNTRIES}
    in_region = {r: [c for c, rr, _ in COUNTRIES if rr == r] for r in REGIONS}
    covered = [{c for t in terr for c in in_region.get(t, [t])} for terr in regions]
    count: dict[str, int] = {}
    for cs in covered:
        for c in cs:
            count[c] = count.get(c, 0) + 1
    return np.array([sum(share[c] / count[c] for c in cs) for cs in covered])


SKILL_PARTNER_SD, SKILL_LISTED, SKILL_VERTICAL_SD = 0.45, 0.6, 0.45


def draw_partners(rng: np.random.Generator, n: int,
                  capacity_total: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Partners in the data contract's columns, and their skill by vertical (n × verticals).

    Territories narrow as the channel grows: the chance of covering a whole
    region is scaled by min(1, 200 / n) and the extra countries by 600 / n, so
    a lead keeps tens of eligible partners rather than thousands.  Capacity
    is proportional to tier weight × lognormal noise × the partner's market
    (leads per round its territory brings, shared among the partners
    covering it) to the power :data:`MARKET_SPREAD`, and sums to ``capacity_total``.
    """
    tier = rng.permutation(np.repeat(np.arange(len(TIERS)), _exact_counts(n, TIER_SHARES)))
    regions = _territories(rng, tier, min(1.0, 200.0 / n), 600.0 / n)
    verticals = _pick_many(rng, VERTICALS, np.array(VERTICAL_SHARES),
                           1 + rng.binomial(2, 0.2 + 0.1 * (3 - tier)))
    lo, hi = np.array(TIER_CERTS).T
    certs = _pick_many(rng, PRODUCTS, np.array(CERT_POPULARITY),
                       rng.integers(lo[tier], hi[tier] + 1))
    listed = np.zeros((n, len(VERTICALS)))
    rows = np.repeat(np.arange(n), [len(v) for v in verticals])
    listed[rows, codes(pd.Series([v for vs in verticals for v in vs], dtype=object),
                       VERTICALS)] = 1.0
    skill = (rng.normal(0.0, SKILL_PARTNER_SD, size=(n, 1)) + SKILL_LISTED * listed
             + rng.normal(0.0, SKILL_VERTICAL_SD, size=(n, len(VERTICALS))))
    weight = (np.asarray(TIER_CAPACITY_WEIGHT)[tier] * rng.lognormal(0.0, 0.35, size=n)
              * _market(regions) ** MARKET_SPREAD)
    capacity = np.maximum(1, np.round(weight / weight.sum() * capacity_total)).astype(np.int64)
    open_leads = rng.poisson(rng.gamma(2.0, 0.35, size=n) * capacity).astype(np.int64)
    active = rng.random(n) >= 0.03
    active[np.argmax(tier == tier.min())] = True  # a channel with no active partner is useless
    width = max(4, len(str(n)))
    names = (pd.Series(np.asarray(_NAME_A)[rng.integers(len(_NAME_A), size=n)], dtype=_STR) + " "
             + pd.Series(np.asarray(_NAME_B)[rng.integers(len(_NAME_B), size=n)], dtype=_STR))
    partners = pd.DataFrame({
        "partner_id": pd.Series([f"P{j + 1:0{width}d}" for j in range(n)], dtype=_STR),
        "name": names,
        "tier": pd.Series(np.asarray(TIERS)[tier], dtype=_STR),
        "regions": pd.Series(regions, dtype=object),
        "verticals": pd.Series(verticals, dtype=object),
        "certifications": pd.Series(certs, dtype=object),
        "capacity": capacity, "open_leads": open_leads, "active": active,
    })
    return partners, skill


def _with_missing(rng: np.random.Generator, values: pd.Series, share: float) -> pd.Series:
    return values.mask(rng.random(len(values)) < share)


def _labels(vocab: tuple[str, ...] | list[str], codes_: np.ndarray) -> pd.Series:
    """``vocab[codes_]`` as a ``str`` column (an arrow take: fast for millions of rows)."""
    taken = pa.array(list(vocab), type=pa.large_string()).take(pa.array(codes_))
    return pd.Series(taken, dtype=_STR)


def numbered(prefix: str, n: int) -> pd.Series:
    """``prefix`` + 1..n zero-padded to at least 7 digits, so ids sort as they were drawn."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.large_string()),
                          width=max(7, len(str(n))), padding="0")
    return prefix + pd.Series(digits, dtype=_STR)


def draw_leads(rng: np.random.Generator, n: int, prefix: str, start: pd.Timestamp, days: float,
               partners: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads in the data contract's columns (ids in order of arrival) and their latent quality."""
    share = np.array([w for _, _, w in COUNTRIES])
    where = rng.choice(len(COUNTRIES), size=n, p=share / share.sum())
    seconds = np.sort(np.floor(rng.uniform(0.0, days * 86400.0, size=n))).astype(np.int64)
    created = (start + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ns, UTC]")
    quality = rng.standard_normal(n)
    score = np.round(np.clip(55.0 + 17.0 * (0.75 * quality + 0.66 * rng.standard_normal(n)),
                             0.0, 100.0), 1)
    z = 0.7 * quality + 0.714 * rng.standard_normal(n)
    intent = np.where(z > 0.7, 0, np.where(z < -0.5, 2, 1))
    log_size = rng.normal(4.2 + 0.25 * quality, 1.6)
    size = np.maximum(1, np.round(np.exp(log_size))).astype(np.int64)
    deal = np.round(np.exp(8.6 + 0.35 * (log_size - 4.2) + rng.normal(0.0, 1.1, size=n)), 2)
    product = rng.choice(len(PRODUCTS), size=n, p=np.array(PRODUCT_SHARES))
    vertical = rng.choice(len(VERTICALS), size=n, p=np.array(VERTICAL_SHARES))
    first = _labels(_FIRST, rng.integers(len(_FIRST), size=n))
    last = _labels(_LAST, rng.integers(len(_LAST), size=n))
    ids = numbered(prefix, n)
    phone = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 10_000_000, size=n)),
                                 pa.large_string()), width=7, padding="0")
    leads = pd.DataFrame({
        "lead_id": ids,
        "created_at": created,
        "region": _labels([r for _, r, _ in COUNTRIES], where),
        "country": _labels([c for c, _, _ in COUNTRIES], where),
        "vertical": _labels(VERTICALS, vertical),
        "product": _with_missing(rng, _labels(PRODUCTS, product), 0.05),
        "company_size": _with_missing(rng, pd.Series(size, dtype="Int64"), 0.04),
        "deal_size": _with_missing(rng, pd.Series(deal, dtype=np.float64), 0.02),
        "intent": _with_missing(rng, _labels(("high", "medium", "low"), intent), 0.03),
        "qualification_score": _with_missing(rng, pd.Series(score, dtype=np.float64), 0.02),
        "account_owner_partner_id": pd.Series(np.full(n, np.nan), dtype=_STR),
        "effort": rng.choice(np.array([1.0, 2.0, 3.0, 5.0]), size=n, p=[0.85, 0.10, 0.04, 0.01]),
        "contact_name": _with_missing(rng, first + " " + last, 0.03),
        "contact_email": _with_missing(
            rng, (first + "." + last + "." + ids + "@example.com").str.lower(), 0.05),
        "contact_phone": _with_missing(rng, "+1-555-" + pd.Series(phone, dtype=_STR), 0.08),
    })
    leads["account_owner_partner_id"] = _draw_owners(rng, leads, partners)
    return leads, quality


def _draw_owners(rng: np.random.Generator, leads: pd.DataFrame,
                 partners: pd.DataFrame) -> pd.Series:
    """About 5 % of leads name an account owner: mostly a partner eligible for them, not always."""
    n = len(leads)
    owned = np.flatnonzero(rng.random(n) < 0.05)
    pick = rng.integers(len(partners), size=len(owned))  # the odd owner outside the rules
    elig = eligible(partners, leads.iloc[owned], honor_account_owner=False)
    li = elig.pairs["lead_index"].to_numpy()
    count = np.bincount(li, minlength=len(owned))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    inside = (count > 0) & (rng.random(len(owned)) < 0.85)
    at = start + np.floor(rng.random(len(owned)) * np.maximum(count, 1)).astype(np.int64)
    pick[inside] = elig.pairs["partner_index"].to_numpy()[at[inside]]
    owner = np.full(n, np.nan, dtype=object)
    owner[owned] = partners["partner_id"].to_numpy(dtype=object)[pick]
    return pd.Series(owner, dtype=_STR)


def draw_history(rng: np.random.Generator, n: int,
                 partners: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` past leads with an eligible partner, each given out by round robin.

    Round robin runs per queue of leads that share an eligible set (same
    region, country and product), in order of arrival: the k-th lead of a
    queue goes to its (k mod size)-th eligible partner.  Eligibility is the
    default policy's without the account-owner rule.  ``converted`` is added
    by the caller from the true probabilities.
    """
    start = ROUND_START - pd.Timedelta(days=HISTORY_DAYS)
    want = int(n * 1.4) + 50 if n else 0
    while True:
        leads, quality = draw_leads(rng, want, "H", start, HISTORY_DAYS, partners)
        elig = eligible(partners, leads, honor_account_owner=False)
        if len(elig.leads_in_round) >= n:
            break
        if want > 100 * n + 1000:
            raise ValueError(f"Cannot draw {n} history leads with an eligible partner: only "
                             f"{len(elig.leads_in_round)} of {want} drawn leads have one.")
        want *= 2
    kept = np.sort(rng.choice(elig.leads_in_round, size=n, replace=False))
    pairs_lead = elig.pairs["lead_index"].to_numpy()
    count = np.bincount(pairs_lead, minlength=len(leads))
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    queue = pd.MultiIndex.from_arrays(
        [leads[c].iloc[kept].fillna("").to_numpy() for c in ("region", "country", "product")])
    queue_code = pd.factorize(queue)[0]
    turn = pd.Series(queue_code).groupby(queue_code).cumcount().to_numpy()
    at = first[kept] + turn % count[kept]
    history = leads.iloc[kept].reset_index(drop=True)
    history["lead_id"] = numbered("H", n)
    history["partner_id"] = pd.Series(
        partners["partner_id"].to_numpy(dtype=object)[elig.pairs["partner_index"].to_numpy()[at]],
        dtype=_STR)
    delay = np.floor(rng.exponential(2 * 3600.0, size=n)).astype(np.int64)
    history["assigned_at"] = (history["created_at"] + pd.to_timedelta(delay, unit="s")).astype(
        "datetime64[ns, UTC]")
    history["converted"] = np.zeros(n, dtype=np.int64)
    return history, quality[kept]
