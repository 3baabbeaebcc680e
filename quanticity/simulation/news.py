"""Synthetic market news with ticker sentiment, drawn per hour from seeded generators.

Articles are generated hour by hour (more in US daytime, few at weekends), each
mentioning one to three tickers and covering one to three topics. A ticker's sentiment
leans with its return over the previous trading session (never the current one, so the
news carries no look-ahead). Sources and URLs are fictional (``.example`` domains).
Feed items follow AlphaVantage's NEWS_SENTIMENT item shape, the only consumer so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from quanticity.simulation.cache import LRUCache
from quanticity.simulation.calendar import to_et
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.instruments import instrument_spec, stable_key

if TYPE_CHECKING:
    from quanticity.simulation.market import SimulatedMarket

__all__ = ["TOPICS", "NewsModel", "sentiment_label"]

TOPICS: dict[str, str] = {
    "blockchain": "Blockchain",
    "earnings": "Earnings",
    "ipo": "IPO",
    "mergers_and_acquisitions": "Mergers & Acquisitions",
    "financial_markets": "Financial Markets",
    "economy_fiscal": "Economy - Fiscal",
    "economy_monetary": "Economy - Monetary",
    "economy_macro": "Economy - Macro",
    "energy_transportation": "Energy & Transportation",
    "finance": "Finance",
    "life_sciences": "Life Sciences",
    "manufacturing": "Manufacturing",
    "real_estate": "Real Estate & Construction",
    "retail_wholesale": "Retail & Wholesale",
    "technology": "Technology",
}
_SECTOR = {
    "AAPL": "technology",
    "MSFT": "technology",
    "NVDA": "technology",
    "GOOGL": "technology",
    "META": "technology",
    "ORCL": "technology",
    "NFLX": "technology",
    "DIS": "technology",
    "AMZN": "retail_wholesale",
    "COST": "retail_wholesale",
    "WMT": "retail_wholesale",
    "TSLA": "manufacturing",
    "V": "finance",
    "HOOD": "finance",
    "HIMS": "life_sciences",
    "SPY": "financial_markets",
    "QQQ": "financial_markets",
    "IWM": "financial_markets",
    "CRYPTO:BTC": "blockchain",
    "CRYPTO:ETH": "blockchain",
    "FOREX:USD": "economy_monetary",
    "FOREX:EUR": "economy_monetary",
}
_GENERAL_TOPICS = (
    "earnings",
    "financial_markets",
    "economy_macro",
    "economy_monetary",
    "mergers_and_acquisitions",
    "finance",
    "economy_fiscal",
    "ipo",
)
_SOURCES = (
    ("Simulated Wire", "www.simwire.example", "Markets"),
    ("Quant Street Journal", "www.qsj.example", "Investing"),
    ("Market Pulse Daily", "www.marketpulse.example", "Stocks"),
    ("Tape Reader", "www.tapereader.example", "n/a"),
    ("Sim Financial Times", "www.simft.example", "Companies"),
)
_AUTHORS = ("Ada Marsh", "Ben Okafor", "Chen Li", "Dana Ruiz", "Eli Novak", "Farah Haddad", "Gus Lindqvist")
_UP = (
    "{name} shares climb as demand outlook improves",
    "{name} rallies after upbeat guidance",
    "Analysts lift price targets on {name}",
    "{name} gains as options traders pile into calls",
)
_DOWN = (
    "{name} slips as margins come under pressure",
    "{name} falls after cautious outlook",
    "{name} shares slide amid sector rotation",
    "Analysts trim {name} estimates",
)
_FLAT = (
    "What to watch for {name} this week",
    "{name}: traders position ahead of key data",
    "{name} trades flat as investors await catalysts",
)
SCORE_DEFINITION = (
    "x <= -0.35: Bearish; -0.35 < x <= -0.15: Somewhat-Bearish; -0.15 < x < 0.15: Neutral; "
    "0.15 <= x < 0.35: Somewhat_Bullish; x >= 0.35: Bullish"
)
RELEVANCE_DEFINITION = "0 < x <= 1, with a higher score indicating higher relevance."
_LOOKBACK = timedelta(days=30)


def sentiment_label(x: float) -> str:
    """AlphaVantage's label for a sentiment score."""
    if x <= -0.35:
        return "Bearish"
    if x <= -0.15:
        return "Somewhat-Bearish"
    if x < 0.15:
        return "Neutral"
    if x < 0.35:
        return "Somewhat-Bullish"
    return "Bullish"


@dataclass(frozen=True, slots=True)
class _Draft:
    published: datetime
    tickers: tuple[str, ...]
    relevance: tuple[float, ...]
    noise: tuple[float, ...]
    topics: tuple[str, ...]
    topic_relevance: tuple[float, ...]
    source: int
    template: float
    authors: tuple[str, ...]
    key: int


class NewsModel:
    """Deterministic hourly news for a simulated market.

    Args:
        seed: master seed.
        market: the market whose returns colour the sentiment.
    """

    def __init__(self, seed: int, market: SimulatedMarket) -> None:
        self.seed = seed
        self.market = market
        self._slots: LRUCache[int, tuple[_Draft, ...]] = LRUCache(4096)
        stocks = [s for s in market.symbols if instrument_spec(s).kind in ("stock", "etf")]
        weights = [0.15 if instrument_spec(s).kind == "etf" else 1.0 for s in stocks]
        self.universe: tuple[str, ...] = (*stocks, "CRYPTO:BTC", "CRYPTO:ETH", "FOREX:USD", "FOREX:EUR")
        w = np.array([*weights, 0.3, 0.2, 0.2, 0.1])
        self._weights = w / w.sum()

    def _slot(self, hour: int) -> tuple[_Draft, ...]:
        return self._slots.get(hour, lambda: self._draw(hour))

    def _draw(self, hour: int) -> tuple[_Draft, ...]:
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed % (1 << 32), stable_key("news") & 0xFFFFFFFF, hour])
        )
        begin = datetime.fromtimestamp(hour * 3600, UTC)
        local = to_et(begin)
        rate = 1.0 if local.weekday() >= 5 else (8.0 if 6 <= local.hour < 18 else 2.0)
        drafts = []
        for j in range(int(rng.poisson(rate))):
            count = 1 + int(rng.random() < 0.35) + int(rng.random() < 0.1)
            tickers = tuple(dict.fromkeys(rng.choice(self.universe, size=count, p=self._weights).tolist()))
            relevance = (float(rng.uniform(0.3, 0.95)), *(float(rng.uniform(0.05, 0.5)) for _ in tickers[1:]))
            topics = [_SECTOR.get(tickers[0], "financial_markets")]
            topics += [str(t) for t in rng.choice(_GENERAL_TOPICS, size=int(rng.integers(0, 3)), replace=False)]
            topics = list(dict.fromkeys(topics))
            drafts.append(
                _Draft(
                    published=begin + timedelta(seconds=int(rng.integers(0, 3600))),
                    tickers=tickers,
                    relevance=relevance,
                    noise=tuple(float(x) for x in rng.normal(0.0, 0.15, len(tickers))),
                    topics=tuple(topics),
                    topic_relevance=tuple(float(rng.uniform(0.1, 1.0)) for _ in topics),
                    source=int(rng.integers(0, len(_SOURCES))),
                    template=float(rng.random()),
                    authors=tuple(str(a) for a in rng.choice(_AUTHORS, size=int(rng.integers(0, 3)), replace=False)),
                    key=stable_key("article", str(hour), str(j)),
                )
            )
        return tuple(sorted(drafts, key=lambda d: d.published))

    def _lean(self, ticker: str, published: datetime) -> float:
        """Sentiment drift from the previous session's return, in [-0.35, 0.35]."""
        if ticker.startswith(("CRYPTO:", "FOREX:")):
            return 0.0
        d = to_et(published).date()
        k = self.market.calendar.index_on_or_before(d - timedelta(days=1))
        if k < 0:
            return 0.0
        spec = instrument_spec(ticker)
        ret = self.market.day_return(ticker, self.market.calendar.day(k))
        return 0.35 * math.tanh(ret / (spec.vol / math.sqrt(252.0)) / 1.5)

    def _item(self, draft: _Draft) -> dict[str, object]:
        scores = [
            max(-1.0, min(1.0, self._lean(t, draft.published) + n))
            for t, n in zip(draft.tickers, draft.noise, strict=True)
        ]
        overall = sum(s * r for s, r in zip(scores, draft.relevance, strict=True)) / sum(draft.relevance)
        first = draft.tickers[0]
        name = instrument_spec(first).name if ":" not in first else first.split(":")[1]
        templates = _UP if overall >= 0.15 else _DOWN if overall <= -0.15 else _FLAT
        title = templates[int(draft.template * len(templates))].format(name=name)
        source, domain, category = _SOURCES[draft.source]
        local = to_et(draft.published)
        slug = "-".join(title.lower().replace(":", "").replace(".", "").split())[:60]
        return {
            "title": title,
            "url": f"https://{domain}/{local:%Y/%m/%d}/{slug}-{draft.key % 10**8}",
            "time_published": f"{local:%Y%m%dT%H%M%S}",
            "authors": list(draft.authors),
            "summary": f"{title}. Simulated coverage of {', '.join(draft.tickers)} for the Quanticity test market.",
            "banner_image": f"https://{domain}/images/{draft.key % 10**8}.jpg",
            "source": source,
            "category_within_source": category,
            "source_domain": domain,
            "topics": [
                {"topic": TOPICS[t], "relevance_score": f"{r:.6f}"}
                for t, r in zip(draft.topics, draft.topic_relevance, strict=True)
            ],
            "overall_sentiment_score": round(overall, 6),
            "overall_sentiment_label": sentiment_label(overall),
            "ticker_sentiment": [
                {
                    "ticker": t,
                    "relevance_score": f"{r:.6f}",
                    "ticker_sentiment_score": f"{s:.6f}",
                    "ticker_sentiment_label": sentiment_label(s),
                }
                for t, r, s in zip(draft.tickers, draft.relevance, scores, strict=True)
            ],
        }

    def articles(
        self,
        tickers: Sequence[str],
        topics: Sequence[str],
        time_from: datetime | None,
        time_to: datetime | None,
        sort: str,
        limit: int,
        as_of: datetime,
    ) -> list[dict[str, object]]:
        """Articles matching every ticker and every topic, sorted and limited.

        Raises:
            SimulationRequestError: an unknown ticker, topic or sort order, or ``time_from`` after ``time_to``.
        """
        wanted = tuple(t.upper() for t in tickers)
        codes = tuple(t.lower() for t in topics)
        unknown = [t for t in wanted if t not in self.universe]
        if unknown or any(c not in TOPICS for c in codes) or sort not in ("LATEST", "EARLIEST", "RELEVANCE"):
            raise SimulationRequestError(f"invalid news inputs: tickers {unknown}, topics {list(codes)}, sort {sort}")
        end = min(time_to or as_of, as_of)
        begin = time_from or end - _LOOKBACK
        if begin > end:
            raise SimulationRequestError("time_from is after time_to")
        begin = max(begin, end - _LOOKBACK)
        hours = range(int(begin.timestamp()) // 3600, int(end.timestamp()) // 3600 + 1)
        if sort == "LATEST":
            hours = hours[::-1]
        found: list[_Draft] = []
        for hour in hours:
            slot = [
                d
                for d in self._slot(hour)
                if begin <= d.published <= end and set(wanted) <= set(d.tickers) and set(codes) <= set(d.topics)
            ]
            found.extend(reversed(slot) if sort == "LATEST" else slot)
            if sort != "RELEVANCE" and len(found) >= limit:
                break
        if sort == "RELEVANCE":

            def weight(d: _Draft) -> float:
                pairs = dict(zip(d.tickers, d.relevance, strict=True))
                return sum(pairs[t] for t in wanted) if wanted else max(d.relevance)

            found.sort(key=lambda d: (-weight(d), -d.published.timestamp()))
        return [self._item(d) for d in found[:limit]]
