"""AlphaVantage's error, throttle and premium texts, verbatim (alphavantage.md §1, §4, §7, §8).

Every function returns the JSON object the real service sends (HTTP 200).
"""

from __future__ import annotations

__all__ = [
    "daily_cap",
    "demo_key",
    "free_burst",
    "html_error_page",
    "invalid_apikey",
    "invalid_call",
    "news_invalid_inputs",
    "news_no_articles",
    "options_sample",
    "per_minute_throttle",
    "premium_endpoint",
    "unknown_function",
]

Payload = dict[str, object]

_DOCS = "https://www.alphavantage.co/documentation/"


def invalid_call(function: str) -> Payload:
    """Bad or missing parameter, unknown symbol."""
    return {"Error Message": f"Invalid API call. Please retry or visit the documentation ({_DOCS}) for {function}."}


def unknown_function(function: str) -> Payload:
    """Unknown (or missing: ``()``) function."""
    return {"Error Message": f"This API function ({function}) does not exist."}


def invalid_apikey() -> Payload:
    """Missing or unknown API key."""
    return {
        "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on "
        "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
    }


def demo_key() -> Payload:
    """The ``demo`` key used outside the documentation examples."""
    return {
        "Information": "The **demo** API key is for demo purposes only. Please claim your free API key at "
        "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
        "It takes fewer than 20 seconds."
    }


def daily_cap(apikey: str, key: str = "Information") -> Payload:
    """Free tier over 25 requests in a day (the real text quotes the key back)."""
    return {
        key: f"We have detected your API key as {apikey} and our standard API rate limit is 25 requests per "
        "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
        "instantly remove all daily rate limits."
    }


def free_burst(key: str = "Information") -> Payload:
    """Free tier faster than one request per second."""
    return {
        key: "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more "
        "sparingly (1 request per second). You may subscribe to any of the premium plans at "
        "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day), raise "
        "the per-second burst limit, and instantly unlock all premium endpoints."
    }


def per_minute_throttle(key: str = "Information") -> Payload:
    """Premium key over its per-minute quota."""
    return {
        key: "Thank you for using Alpha Vantage! Please contact premium@alphavantage.co if you are targeting a "
        "higher API call volume."
    }


def premium_endpoint() -> Payload:
    """Premium-only function called with a key that lacks the plan."""
    return {
        "Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of "
        "the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all "
        "premium endpoints"
    }


def news_invalid_inputs() -> Payload:
    """NEWS_SENTIMENT with an unknown ticker or topic (3P, several consumers quote it)."""
    return {
        "Information": "Invalid inputs. Please refer to the API documentation "
        "https://www.alphavantage.co/documentation#newsapi and try again."
    }


def news_no_articles() -> Payload:
    """NEWS_SENTIMENT with valid inputs that match nothing (3P, several consumers quote it)."""
    return {
        "Information": "No articles found. Please adjust the time range or refer to the API documentation "
        "https://www.alphavantage.co/documentation#newsapi and try again."
    }


def _sample_row(right: str, greeks: bool) -> dict[str, str]:
    row = {
        "contractID": f"XXYYZZ999999{right[0].upper()}00020000",
        "symbol": "XXYYZZ",
        "expiration": "2099-99-99",
        "strike": "20.00",
        "type": right,
        "last": "100.00",
        "mark": "100.10",
        "bid": "100.05",
        "bid_size": "100",
        "ask": "100.15",
        "ask_size": "100",
        "volume": "100",
        "open_interest": "100",
        "date": "2049-99-99",
    }
    if greeks:
        row |= {
            "implied_volatility": "0.10000",
            "delta": "0.10000",
            "gamma": "0.10000",
            "theta": "-0.10000",
            "vega": "0.10000",
            "rho": "0.10000",
        }
    return row


def options_sample(greeks: bool) -> Payload:
    """The artificial chain REALTIME_OPTIONS sends to keys without the options entitlement (S3)."""
    return {
        "endpoint": "Realtime Options",
        "message": "This is a premium endpoint. ***THE SAMPLE DATA SCHEMA BELOW IS ARTIFICIAL AND FOR ILLUSTRATION "
        "PURPOSES ONLY***. To access the actual data, please subscribe to either the 600 requests per "
        "minute or the 1200 requests per minute premium plan at https://www.alphavantage.co/premium/ if "
        "you would like to access realtime US options data for personal non-professional use. For "
        "professional/commercial use, please contact support at support@alphavantage.co.",
        "data": [_sample_row("call", greeks), _sample_row("put", greeks)],
    }


def html_error_page() -> bytes:
    """The kind of HTML page the service has sent instead of JSON when in trouble."""
    return (
        b"<!DOCTYPE html>\n<html><head><title>Application Error</title></head>\n<body><h1>Application Error</h1>"
        b"<p>An error occurred in the application and your page could not be served. Please try again in a few "
        b"moments.</p></body></html>\n"
    )
