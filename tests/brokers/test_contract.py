"""What every live broker client promises, run against each broker's fake.

Each failure a poll can meet (429, 5xx, a reply slower than the timeout, a malformed or oversized
body, a session or token the broker stops accepting, nothing listening) comes out as its typed
BrokerError, and no secret (a credential, a session token the fake issued) reaches the error, a
log line or the exchange kept for ``run --record``. A broker joins the suite with one ``Fake``
entry in ``FAKES``: how to build its fake and the client's connection, and how to script the
fake's answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.brokers import FORMATS, Broker, alphapoint
from monitor.brokers.errors import (
    AuthExpired,
    BadResponse,
    BrokerError,
    BrokerUnavailable,
    RateLimited,
)
from monitor.brokers.transport import Exchange
from tests.brokers.live import connection
from tests.fakes import alphapoint as alphapoint_fake
from tests.fakes import kotak_neo, portfolio, samco, serve, torus
from tests.fakes.scripted import Received, Reply, html_page, json_reply
from tests.leaks import assert_no_secret_leaks

TIMEOUT = 2.0  # total timeout of the slow-reply tests: ample for a local answer on a busy machine
MAX_BODY = 4096  # above every fake's login answers, below a padded positions body
HELD = 600.0  # a scripted delay no test waits out: the fake releases it when it stops


@dataclass(frozen=True)
class Session:
    """A broker that logs in: how its fake says a session is no longer accepted."""

    header: str  # the request header that carries the session token on the positions call
    stale: Mapping[str, Reply]  # each answer the broker gives a stale session, by test id
    refused: Reply  # the refusal that still comes after a fresh login
    refused_error: str  # the AuthExpired text that refusal gives
    refused_status: int | None  # and its status (None where the refusal came with a 200)


@dataclass(frozen=True)
class Fake:
    """One broker's entry in the contract suite."""

    name: str  # as in monitor.brokers.FORMATS
    make_state: Callable[[], Any]  # the fake's account, with a ``requests: list[Received]``
    make_app: Callable[[Any], web.Application]
    secrets: Mapping[str, str]
    # The calls of a poll up to the positions call, in order, each with the endpoint name the
    # fake records it under (pricing calls after it are each broker's own business).
    steps: Mapping[str, str]
    script: Callable[[Any, str, Reply], None]  # queue one answer for the next call of an endpoint
    issued: Callable[[Any], Iterable[str]]  # the session tokens the fake handed out
    positions_body: bytes  # a good positions body, to cut short and to pad
    error_reply: Callable[[int], Reply]  # the broker's own error document under a status
    # Bodies beyond the common malformed ones, by test id: (body, what the error names).
    malformed: Mapping[str, tuple[bytes, str]] = field(default_factory=dict)
    # Failures of the broker's own envelopes, for the leak test, by test id.
    failures: Mapping[str, Reply] = field(default_factory=dict)
    options: Mapping[str, object] = field(default_factory=dict)
    session: Session | None = None
    renew: str | None = None  # a token broker: the hint its AuthExpired gives


# --- the five brokers ------------------------------------------------------------------------

KOTAK_SECRETS = {
    "access_token": "fake-access-token-7Qx2",
    "mobile_number": "+910000000001",
    "ucc": "FAKEUC1",
    "mpin": "918273",
    "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
}
KOTAK_ROW = kotak_neo.row(flBuyQty="10", buyAmt="1000.00")


def kotak_state() -> kotak_neo.KotakNeoState:
    return kotak_neo.KotakNeoState(
        access_token=KOTAK_SECRETS["access_token"],
        mobile_number=KOTAK_SECRETS["mobile_number"],
        ucc=KOTAK_SECRETS["ucc"],
        mpin=KOTAK_SECRETS["mpin"],
        totp_secret=KOTAK_SECRETS["totp_secret"],
        rows=[dict(KOTAK_ROW)],
        ltps={"nse_fo|53179": "101.2000"},
    )


KOTAK_INVALID_SESSION = kotak_neo.not_ok_reply(1003, "Invalid session", status=401)
KOTAK = Fake(
    name="kotak_neo",
    make_state=kotak_state,
    make_app=kotak_neo.make_app,
    secrets=KOTAK_SECRETS,
    steps={"login": "login", "validate": "validate", "positions": "positions"},
    script=lambda state, endpoint, reply: state.script(endpoint, reply),
    issued=lambda state: state.issued,
    positions_body=json.dumps({"stat": "Ok", "stCode": 200, "data": [KOTAK_ROW]}).encode(),
    error_reply=lambda status: kotak_neo.not_ok_reply(status, "Unexpected error", status),
    malformed={
        "empty": (b"", "body: not valid JSON"),
        "array": (b"[]", "body: Expected `object`"),
    },
    session=Session(
        header="Auth",
        stale={
            "http-401": KOTAK_INVALID_SESSION,
            "http-403": kotak_neo.not_ok_reply(1003, "Invalid session", status=403),
            "http-200-stcode-1003": kotak_neo.not_ok_reply(1003, "Invalid session"),
            "http-200-stcode-100022": kotak_neo.not_ok_reply(100022, "Session expired"),
        },
        refused=KOTAK_INVALID_SESSION,
        refused_error="kotak_neo: HTTP 401: session not accepted",
        refused_status=401,
    ),
)

SAMCO_SECRETS = {"api_key": "fake-samco-api-key", "api_secret": "fake-samco-api-secret-DO-NOT-LEAK"}
SAMCO = Fake(
    name="samco",
    make_state=lambda: samco.SamcoState(
        api_key=SAMCO_SECRETS["api_key"], api_secret=SAMCO_SECRETS["api_secret"]
    ),
    make_app=samco.make_app,
    secrets=SAMCO_SECRETS,
    steps={"login": "login", "positions": "positions"},
    script=lambda state, endpoint, reply: state.script(endpoint, reply),
    issued=lambda state: state.issued,
    positions_body=json.dumps(
        {
            "status": "Success",
            "statusMessage": "Request successful",
            "positionDetails": [samco.RELIANCE_ROW],
        }
    ).encode(),
    error_reply=lambda status: json_reply(
        {"status": "Failure", "statusMessage": "Something went wrong"}, status
    ),
    malformed={
        "no-details": (b'{"status": "Success"}', "positionDetails: missing"),
        "array": (b'[{"status": "Success"}]', "body: Expected `object`"),
    },
    session=Session(
        header="x-session-token",
        stale={
            "http-401": json_reply(
                {"status": "Failure", "statusMessage": "Session Expired. Please login again"}, 401
            ),
            "status-failure": json_reply(
                {"status": "Failure", "statusMessage": "Session Expired. Please login again"}
            ),
        },
        refused=json_reply({"status": "Failure"}, 401),
        refused_error="samco: HTTP 401: session not accepted",
        refused_status=401,
    ),
)

ALPHAPOINT_SECRETS = {
    "api_key": "fake-api-key-0001",
    "api_secret": "fake-api-secret-not-real",
    "user_id": "70531",  # digits, as the gateway has them, found in no body or message
}


def alphapoint_state() -> alphapoint_fake.GatewayState:
    return alphapoint_fake.GatewayState(
        api_key=ALPHAPOINT_SECRETS["api_key"],
        api_secret=ALPHAPOINT_SECRETS["api_secret"],
        user_id=ALPHAPOINT_SECRETS["user_id"],
        account_id=4,
        positions=[alphapoint_fake.balance("BTC", 1, 0.5), alphapoint_fake.balance("USD", 2, 10)],
        instruments=[alphapoint_fake.instrument(11, "BTC", "USD")],
        level1={11: alphapoint_fake.level1(11, 61234.5)},
    )


ALPHAPOINT_NOT_AUTHORIZED = Reply(body=alphapoint_fake.envelope(20, "Not Authorized"))
ALPHAPOINT = Fake(
    name="alphapoint",
    make_state=alphapoint_state,
    make_app=alphapoint_fake.make_app,
    secrets=ALPHAPOINT_SECRETS,
    options={"account_id": 4, "oms_id": 1, "quote_currency": "USD"},
    steps={"login": "AuthenticateUser", "positions": "GetAccountPositions"},
    script=lambda state, function, reply: state.script(function, reply),
    issued=lambda state: state.issued,
    positions_body=json.dumps([alphapoint_fake.balance("BTC", 1, 0.5)]).encode(),
    error_reply=lambda status: Reply(status, alphapoint_fake.envelope(100, "Internal error")),
    malformed={
        "object": (b'{"result": true}', "body: expected an array"),
        "no-amount": (b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1}]', "[0].amount"),
    },
    session=Session(
        header="aptoken",
        stale={"errorcode-20": ALPHAPOINT_NOT_AUTHORIZED},
        refused=ALPHAPOINT_NOT_AUTHORIZED,
        refused_error="alphapoint: result false, errorcode 20: Not Authorized",
        refused_status=None,
    ),
)

PORTFOLIO_TOKEN = "fake-portfolio-token-0123456789"  # not a real token
PORTFOLIO = Fake(
    name="portfolio",
    make_state=lambda: portfolio.PortfolioState(token=PORTFOLIO_TOKEN),
    make_app=portfolio.make_app,
    secrets={"token": PORTFOLIO_TOKEN},
    steps={"positions": ""},  # a one-endpoint fake records no endpoint name
    script=lambda state, _, reply: state.faults.append(reply),
    issued=lambda _: (),
    positions_body=portfolio.PortfolioState(token=PORTFOLIO_TOKEN).body(),
    error_reply=lambda status: portfolio.failed(
        status, portfolio.SEED_ERRORS.get(status, "Internal server error")
    ),
    failures={
        "envelope-401": portfolio.failed(401, http_status=200),
        "envelope-500": portfolio.failed(500, http_status=200),
    },
    renew="renew the API token and restart",
)

TORUS_TOKEN = "fake-torus-jwt.0123456789"  # not a real token
TORUS_SEED = Path(__file__).parent / "fixtures" / "torus" / "netposition-seed-verbatim.json"
TORUS = Fake(
    name="torus",
    make_state=lambda: torus.TorusState(token=TORUS_TOKEN),
    make_app=torus.make_app,
    secrets={"token": TORUS_TOKEN},
    steps={"positions": ""},  # a one-endpoint fake records no endpoint name
    script=lambda state, _, reply: state.faults.append(reply),
    issued=lambda _: (),
    positions_body=torus.TorusState(token=TORUS_TOKEN).body(),
    error_reply=lambda status: torus.failed(status, "Internal server error"),
    malformed={
        # The seed's own sample ends its array with a trailing comma.
        "seed-trailing-comma": (TORUS_SEED.read_bytes(), "body: not valid JSON"),
    },
    failures={"envelope-error": torus.failed(200, "Unable to fetch net positions")},
    renew="renew the Torus access token (browser login) and restart",
)

FAKES = (KOTAK, SAMCO, ALPHAPOINT, PORTFOLIO, TORUS)


# --- running a client against a fake ---------------------------------------------------------


@dataclass
class Live:
    """A fake, a live client pointed at it, and what the test captured of the logs."""

    fake: Fake
    state: Any
    client: Broker
    logged: Callable[[], str]

    def calls(self, step: str) -> list[Received]:
        """The requests the fake saw for one step of the poll."""
        return [r for r in self.state.requests if r.endpoint == self.fake.steps[step]]

    def endpoints(self, since: int = 0) -> list[str]:
        """The endpoint of every request the fake saw from the ``since``-th on, in order."""
        return [r.endpoint for r in self.state.requests[since:]]

    def last_step(self) -> str:
        """The step of the last request the fake saw: where the poll stopped."""
        endpoint = self.state.requests[-1].endpoint
        return next(step for step, name in self.fake.steps.items() if name == endpoint)

    def script(self, step: str, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``step`` with ``reply``."""
        for _ in range(times):
            self.fake.script(self.state, self.fake.steps[step], reply)

    def assert_nothing_leaked(self, error: BaseException | None = None) -> None:
        """No credential or issued session token in ``error``, the logs or the kept exchange."""
        secrets = [*self.fake.secrets.values(), *self.fake.issued(self.state)]
        assert_no_secret_leaks(secrets, error, self.logged(), self.client.last_exchange)


@pytest.fixture(autouse=True)
def fast_alphapoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """AlphaPoint's 5 requests/s would slow every poll; its own tests check that limit."""
    monkeypatch.setattr(alphapoint, "REQUESTS_PER_SECOND", 1000)


@pytest.fixture
def logged(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[], str]:
    """Everything logged at any level, and printed, so far."""
    caplog.set_level(logging.DEBUG)
    printed: list[str] = []

    def text() -> str:
        printed.extend(capsys.readouterr())
        return caplog.text + "".join(printed)

    return text


@pytest.fixture
def running(logged: Callable[[], str]) -> Callable[..., Any]:
    """``async with running(fake, **connection_options) as live:``: a client against the fake."""

    @asynccontextmanager
    async def run(fake: Fake, **options: Any) -> AsyncIterator[Live]:
        state = fake.make_state()
        async with (
            serve(fake.make_app(state)) as base,
            connection(base, fake.secrets, fake.options, **options) as conn,
        ):
            yield Live(fake, state, FORMATS[fake.name].live.client(conn), logged)

    return run


def each_step(fakes: Sequence[Fake] = FAKES) -> list[Any]:
    """(fake, step) for every call of every broker's poll."""
    return [
        pytest.param(fake, step, id=f"{fake.name}-{step}") for fake in fakes for step in fake.steps
    ]


def by_name(fakes: Sequence[Fake]) -> list[Any]:
    return [pytest.param(fake, id=fake.name) for fake in fakes]


SESSION_FAKES = [fake for fake in FAKES if fake.session is not None]
TOKEN_FAKES = [fake for fake in FAKES if fake.renew is not None]


def assert_stopped_at(live: Live, step: str, reply: Reply | None) -> None:
    """The poll made one call of each step up to ``step`` and none after it; a failed positions
    call is the exchange kept (nothing is kept when no answer came)."""
    steps = list(live.fake.steps)
    made = [len(live.calls(each)) for each in steps]
    assert made == [1] * (steps.index(step) + 1) + [0] * (len(steps) - steps.index(step) - 1)
    assert live.last_step() == step
    if step == "positions":
        expected = None if reply is None else Exchange(reply.status, reply.body or b"", {})
        assert live.client.last_exchange == expected


# --- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fake", "step"), each_step())
async def test_429_is_rate_limited_with_the_retry_after_delay(running, fake, step):
    """HTTP 429 with Retry-After: 7 on any call is RateLimited(retry_after=7.0); no retry."""
    reply = json_reply({"status": "busy"}, 429, **{"Retry-After": "7"})
    async with running(fake) as live:
        live.script(step, reply)
        with pytest.raises(RateLimited) as info:
            await live.client.fetch()

    assert (info.value.status, info.value.retry_after) == (429, 7.0)
    assert str(info.value) == f"{fake.name}: HTTP 429: rate limited"
    assert_stopped_at(live, step, reply)
    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize("body", ["envelope", "html"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(("fake", "step"), each_step())
async def test_5xx_is_broker_unavailable_with_the_status(running, fake, step, status, body):
    """A 5xx on any call, as the broker's error document or a proxy's HTML page, is
    BrokerUnavailable carrying the status; the poll goes no further."""
    reply = fake.error_reply(status) if body == "envelope" else html_page(status)
    async with running(fake) as live:
        live.script(step, reply)
        with pytest.raises(BrokerUnavailable) as info:
            await live.client.fetch()

    assert info.value.status == status
    assert str(info.value) == f"{fake.name}: HTTP {status}: broker unavailable"
    assert_stopped_at(live, step, reply)
    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize(("fake", "step"), each_step())
async def test_a_reply_slower_than_the_timeout_is_broker_unavailable(running, fake, step):
    """A reply held until the fake stops: the client gives up at its total timeout, after the
    request reached the fake, and keeps no exchange."""
    async with running(fake, total_timeout=TIMEOUT) as live:
        live.script(step, Reply(delay=HELD))
        with pytest.raises(BrokerUnavailable) as info:
            await live.client.fetch()

    assert str(info.value) == f"{fake.name}: 127.0.0.1: timed out"
    assert info.value.status is None
    assert_stopped_at(live, step, None)
    live.assert_nothing_leaked(info.value)


def malformed_bodies() -> list[Any]:
    """(fake, body, what the error names): the common breakages, then each broker's own."""
    params = []
    for fake in FAKES:
        good = fake.positions_body
        common = {
            "invalid-json": (good[:1] + b'"data": [}', "body: not valid JSON"),
            "truncated": (good[: len(good) // 2], "body: not valid JSON"),
            "html": (b"<html><body>Service Unavailable</body></html>", "body: not valid JSON"),
        }
        for case, (body, reason) in {**common, **fake.malformed}.items():
            params.append(pytest.param(fake, body, reason, id=f"{fake.name}-{case}"))
    return params


@pytest.mark.parametrize(("fake", "body", "reason"), malformed_bodies())
async def test_a_malformed_positions_body_is_bad_response_naming_the_reason(
    running, fake, body, reason
):
    """A 200 whose body is not the broker's positions document is BadResponse (no subclass)
    naming the broker and what is wrong; the body is kept as the exchange, nothing is priced."""
    reply = Reply(200, body)
    async with running(fake) as live:
        live.script("positions", reply)
        with pytest.raises(BadResponse) as info:
            await live.client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value).startswith(f"{fake.name}: {reason}")
    assert_stopped_at(live, "positions", reply)
    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize("fake", by_name(FAKES))
async def test_a_positions_body_over_the_cap_is_bad_response(running, fake):
    """A positions body larger than max_body is BadResponse naming the cap, not read whole."""
    padded = fake.positions_body + b" " * MAX_BODY
    async with running(fake, max_body=MAX_BODY) as live:
        live.script("positions", Reply(200, padded))
        with pytest.raises(BadResponse) as info:
            await live.client.fetch()

    assert str(info.value) == f"{fake.name}: 127.0.0.1: body larger than {MAX_BODY} bytes"
    assert info.value.status == 200
    assert_stopped_at(live, "positions", None)
    live.assert_nothing_leaked(info.value)


def stale_sessions() -> list[Any]:
    return [
        pytest.param(fake, reply, id=f"{fake.name}-{case}")
        for fake in SESSION_FAKES
        for case, reply in fake.session.stale.items()
    ]


@pytest.mark.parametrize(("fake", "stale"), stale_sessions())
async def test_a_session_no_longer_accepted_is_renewed_by_one_login(running, fake, stale):
    """The positions call refused as a stale session: one new login, the call again with the
    new token, and the poll succeeds."""
    session = fake.session
    async with running(fake) as live:
        first_poll = await live.client.fetch()
        old_token = live.calls("positions")[0].headers[session.header]
        before = len(live.state.requests)
        live.script("positions", stale)  # the only refusal: the old token still works here
        second_poll = await live.client.fetch()

    logins = [fake.steps[step] for step in fake.steps if step != "positions"]
    positions = fake.steps["positions"]
    again = [positions, *logins, positions]
    assert live.endpoints(before)[: len(again)] == again
    assert second_poll == first_poll
    first, refused, renewed = live.calls("positions")
    assert refused.headers[session.header] == old_token == first.headers[session.header]
    assert renewed.headers[session.header] != old_token
    assert renewed.headers[session.header] in live.fake.issued(live.state)
    assert live.client.last_exchange is not None
    assert live.client.last_exchange.status == 200
    live.assert_nothing_leaked()


@pytest.mark.parametrize("fake", by_name(SESSION_FAKES))
async def test_a_session_refused_after_the_new_login_is_auth_expired(running, fake):
    """A refusal straight after the re-login is AuthExpired: exactly one re-login, no loop."""
    session = fake.session
    async with running(fake) as live:
        await live.client.fetch()
        before = len(live.state.requests)
        live.script("positions", session.refused, times=3)
        with pytest.raises(AuthExpired) as info:
            await live.client.fetch()

    assert str(info.value) == session.refused_error
    assert info.value.status == session.refused_status
    logins = [fake.steps[step] for step in fake.steps if step != "positions"]
    positions = fake.steps["positions"]
    assert live.endpoints(before) == [positions, *logins, positions]
    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("fake", by_name(TOKEN_FAKES))
async def test_a_refused_token_is_auth_expired_without_retry(running, fake, status):
    """A broker whose token comes from outside says to renew it: 401/403 is AuthExpired after
    exactly one request."""
    reply = fake.error_reply(status)
    async with running(fake) as live:
        live.script("positions", reply)
        with pytest.raises(AuthExpired) as info:
            await live.client.fetch()

    assert str(info.value) == f"{fake.name}: token rejected (HTTP {status}): {fake.renew}"
    assert info.value.status == status
    assert_stopped_at(live, "positions", reply)
    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize("fake", by_name(TOKEN_FAKES))
async def test_a_token_the_fake_does_not_accept_is_auth_expired_once(running, fake):
    """The fake's own refusal of another token: AuthExpired with the renew hint, one request."""
    async with running(fake) as live:
        live.state.token = "a-different-token"
        with pytest.raises(AuthExpired) as info:
            await live.client.fetch()

    assert str(info.value) == f"{fake.name}: token rejected (HTTP 401): {fake.renew}"
    assert info.value.status == 401
    assert len(live.state.requests) == 1
    live.assert_nothing_leaked(info.value)


FAILURES = {
    "401": lambda fake: fake.error_reply(401),
    "403": lambda fake: fake.error_reply(403),
    "404": lambda _: json_reply({}, 404),
    "429": lambda _: json_reply({}, 429, **{"Retry-After": "3"}),
    "503": lambda fake: fake.error_reply(503),
    "html": lambda _: html_page(200),
    "timeout": lambda _: Reply(delay=HELD),
}


def every_failure() -> list[Any]:
    params = []
    for fake in FAKES:
        replies = {case: make(fake) for case, make in FAILURES.items()}
        for case, reply in {**replies, **fake.failures}.items():
            params.append(pytest.param(fake, reply, id=f"{fake.name}-{case}"))
    return params


@pytest.mark.parametrize(("fake", "reply"), every_failure())
async def test_no_failure_leaks_a_secret(running, fake, reply):
    """Whatever the positions call fails with (again after a re-login), the error, its chain,
    the logs and the kept exchange hold no credential and no issued session token."""
    async with running(fake, total_timeout=TIMEOUT) as live:
        live.script("positions", reply, times=2)
        with pytest.raises(BrokerError) as info:
            await live.client.fetch()

    live.assert_nothing_leaked(info.value)


@pytest.mark.parametrize("fake", by_name(FAKES))
async def test_nothing_listening_is_broker_unavailable_naming_the_host(logged, fake):
    """A base URL where nothing listens is BrokerUnavailable naming the host, not a crash."""
    async with serve(fake.make_app(fake.make_state())) as base:
        pass  # the server is gone once the block ends
    async with connection(base, fake.secrets, fake.options) as conn:
        client = FORMATS[fake.name].live.client(conn)
        with pytest.raises(BrokerUnavailable) as info:
            await client.fetch()

    assert str(info.value).startswith(f"{fake.name}: 127.0.0.1: ")
    assert client.last_exchange is None
    assert_no_secret_leaks(fake.secrets.values(), info.value, logged())
