"""Signature checks without a web server, starting with Twilio's published test vector."""

from __future__ import annotations

import pytest

from textback.channel.signature import FormParams
from textback.channel.signature import SignatureChecker
from textback.channel.signature import port_variants
from textback.channel.signature import public_url
from textback.channel.signature import sign

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
VECTOR_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_published_test_vector() -> None:
    assert sign("12345", VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE
    checker = SignatureChecker(["12345"])
    assert checker.is_valid(VECTOR_URL, FormParams.from_pairs(VECTOR_PARAMS), VECTOR_SIGNATURE)


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        (VECTOR_URL, VECTOR_PARAMS, None),
        (VECTOR_URL, VECTOR_PARAMS, ""),
        (VECTOR_URL, VECTOR_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"),
        (VECTOR_URL.replace("https", "http"), VECTOR_PARAMS, VECTOR_SIGNATURE),
        (VECTOR_URL + "&baz=3", VECTOR_PARAMS, VECTOR_SIGNATURE),
        (VECTOR_URL, [*VECTOR_PARAMS, ("Extra", "1")], VECTOR_SIGNATURE),
        (VECTOR_URL, VECTOR_PARAMS[:-1], VECTOR_SIGNATURE),
        (VECTOR_URL, VECTOR_PARAMS, "ünïcode"),
    ],
)
def test_anything_changed_is_refused(
    url: str, params: list[tuple[str, str]], signature: str | None
) -> None:
    checker = SignatureChecker(["12345"])
    assert not checker.is_valid(url, FormParams.from_pairs(params), signature)


def test_secondary_token_is_accepted_and_others_are_not() -> None:
    checker = SignatureChecker(["primary", "secondary"])
    params = FormParams.from_pairs(VECTOR_PARAMS)
    assert checker.is_valid(VECTOR_URL, params, sign("secondary", VECTOR_URL, VECTOR_PARAMS))
    assert checker.is_valid(VECTOR_URL, params, sign("primary", VECTOR_URL, VECTOR_PARAMS))
    assert not checker.is_valid(VECTOR_URL, params, sign("third", VECTOR_URL, VECTOR_PARAMS))


def test_repeated_keys_are_signed_over_every_value() -> None:
    pairs = [("A", "2"), ("A", "1"), ("B", "x")]
    signature = sign("t", "https://x.test/twilio", pairs)
    checker = SignatureChecker(["t"])
    assert checker.is_valid("https://x.test/twilio", FormParams.from_pairs(pairs), signature)
    dropped = FormParams.from_pairs([("A", "2"), ("B", "x")])
    assert not checker.is_valid("https://x.test/twilio", dropped, signature)


@pytest.mark.parametrize(
    ("url", "variants"),
    [
        ("https://a.test/t", ["https://a.test/t", "https://a.test:443/t"]),
        ("https://a.test:443/t?x=1", ["https://a.test:443/t?x=1", "https://a.test/t?x=1"]),
        ("http://a.test/t", ["http://a.test/t", "http://a.test:80/t"]),
        ("http://a.test:8080/t", ["http://a.test:8080/t"]),
    ],
)
def test_port_variants(url: str, variants: list[str]) -> None:
    assert port_variants(url) == variants


def test_signature_with_explicit_default_port_is_accepted() -> None:
    pairs = [("Body", "hi")]
    signature = sign("t", "https://a.test:443/twilio", pairs)
    assert SignatureChecker(["t"]).is_valid(
        "https://a.test/twilio", FormParams.from_pairs(pairs), signature
    )


@pytest.mark.parametrize(
    ("base", "path", "query", "expected"),
    [
        ("https://abc.ngrok.app", "/twilio", "", "https://abc.ngrok.app/twilio"),
        (
            "https://abc.ngrok.app/",
            "/twilio",
            "a=1&b=%20",
            "https://abc.ngrok.app/twilio?a=1&b=%20",
        ),
        ("https://x.test/sms", "/twilio", "", "https://x.test/sms/twilio"),
        ("http://x.test", "/a b", "", "http://x.test/a%20b"),
    ],
)
def test_public_url(base: str, path: str, query: str, expected: str) -> None:
    assert public_url(base, path, query) == expected
