"""run --record: every poll outcome as a replay line, numbers exact, secrets removed."""

from __future__ import annotations

import json
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor import config
from monitor.brokers.errors import BadResponse, BrokerUnavailable
from monitor.brokers.transport import Exchange
from monitor.cli import main
from monitor.recording import Recorder
from monitor.replay import read_records
from tests.snapshots import T0

# `main` configures the process's logging onto pytest's captured stream: undo it after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")

FIXTURES = Path(__file__).parent / "brokers" / "fixtures"
SEED = FIXTURES / "kotak_neo" / "positions.json"


def test_lines_replay_to_the_same_bytes_numbers_and_quotes(tmp_path: Path) -> None:
    """A recorded good poll, an HTML 502 and a timeout come back from read_records intact."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=[])
    pretty = SEED.read_bytes()  # multi-line JSON, as the broker sent it
    quotes = {"nse_fo:53179": Decimal("45012.50")}
    recorder.record("k1", "kotak_neo", T0, Exchange(200, pretty, quotes), None)
    recorder.record("k1", "kotak_neo", T0, Exchange(502, b"<html>Bad Gateway</html>", {}), None)
    recorder.record("k1", "kotak_neo", T0, None, BrokerUnavailable("kotak_neo", "api: timed out"))
    recorder.close()

    lines = path.read_text().splitlines()
    assert len(lines) == 3
    good, html, timeout = read_records(path)
    assert json.loads(good.body or b"") == json.loads(pretty)
    assert b'"buyAmt":"2625.00"' in (good.body or b"")  # the broker's own digits
    assert (good.status, good.quotes) == (200, {"nse_fo:53179": Decimal("45012.50")})
    assert (html.status, html.body) == (502, b"<html>Bad Gateway</html>")
    assert (timeout.status, timeout.body, timeout.error) == (None, None, "api: timed out")
    assert timeout.at == T0


def test_a_poll_that_failed_after_a_good_answer_is_recorded_as_failed(tmp_path: Path) -> None:
    """Positions came back 200, then the price lookup timed out: the replay line is an error,
    not a body that would replay as a good poll; a body that did not parse keeps the body."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=[])
    good = Exchange(200, SEED.read_bytes(), {})
    recorder.record(
        "k1", "kotak_neo", T0, good, BrokerUnavailable("kotak_neo", "quotes: timed out")
    )
    unparsable = Exchange(200, b'{"stat": "Ok", "data": 7}', {})
    recorder.record("k1", "kotak_neo", T0, unparsable, BadResponse("kotak_neo", "data: not a list"))
    recorder.close()
    timed_out, bad = read_records(path)
    assert (timed_out.status, timed_out.body, timed_out.error) == (None, None, "quotes: timed out")
    assert (bad.status, bad.body, bad.error) == (200, b'{"stat":"Ok","data":7}', None)


def test_a_new_file_is_owner_only_and_an_old_one_is_appended_to(tmp_path: Path) -> None:
    """Recorded positions are as private as the state file: mode 0600; a rerun appends."""
    path = tmp_path / "polls.jsonl"
    for _ in range(2):
        recorder = Recorder(path, secrets=[])
        recorder.record("k1", "kotak_neo", T0, None, BrokerUnavailable("kotak_neo", "timed out"))
        recorder.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().splitlines()) == 2


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    """A secret echoed in a body (a misbehaving broker) is replaced before the line is written."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=["tok-9f8e7d6c5b4a"])
    body = b'{"Status": "Failed", "message": "token tok-9f8e7d6c5b4a expired", "errorCode": "401"}'
    recorder.record("p1", "portfolio", T0, Exchange(401, body, {}), None)
    recorder.close()
    text = path.read_text()
    assert "tok-9f8e7d6c5b4a" not in text
    assert "[redacted]" in text


def test_secrets_are_removed_from_text_but_never_from_numbers(tmp_path: Path) -> None:
    """A secret with a quote in an error, and an MPIN whose digits occur inside a number."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=['p"ss\\word', "918273"])
    body = b'[{"omsId": 1, "amount": 2.000000000000000001, "hold": 9182731.5, "note": "918273"}]'
    recorder.record("a1", "alphapoint", T0, Exchange(200, body, {}), None)
    failure = BrokerUnavailable("alphapoint", 'login said p"ss\\word is wrong')
    recorder.record("a1", "alphapoint", T0, None, failure)
    recorder.close()
    text = path.read_text()
    assert 'p"ss' not in text
    assert 'p\\"ss' not in text
    good, failed = read_records(path)
    assert json.loads(good.body or b"", parse_float=Decimal) == [
        {"omsId": 1, "amount": Decimal("2.000000000000000001"), "hold": Decimal("9182731.5"),
         "note": "[redacted]"}
    ]  # fmt: skip
    assert failed.error == "login said [redacted] is wrong"


def test_credentials_the_broker_sent_never_reach_the_file(tmp_path: Path) -> None:
    """A session token the broker issued is in no configuration: a field named like a
    credential, at any depth, a credential in a query string, and a configured secret
    percent-encoded (upper or lower case) are all removed; other fields are kept."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=["p@ss/w0rd"])
    body = json.dumps({
        "SessionToken": "issued-9f8e7d", "omsId": 1, "Authenticated": True,
        "data": [{"user": {"access_token": "issued-abc", "MPIN": 9182, "tok": "53179"}}],
        "note": 'echo {"sid": "issued-sid-1"} of p%40ss%2Fw0rd and p%40ss%2fw0rd',
    }).encode()  # fmt: skip
    recorder.record("k1", "kotak_neo", T0, Exchange(401, body, {}), None)
    failure = BrokerUnavailable("kotak_neo", "GET https://h/q?x=1&sessionToken=issued-qs got 502")
    recorder.record("k1", "kotak_neo", T0, None, failure)
    recorder.close()
    text = path.read_text()
    for leak in ("issued-", "p%40ss", "p@ss", "9182"):
        assert leak not in text
    recorded, failed = read_records(path)
    kept = json.loads(recorded.body or b"")
    assert (kept["omsId"], kept["Authenticated"], kept["data"][0]["user"]["tok"]) == (
        1,
        True,
        "53179",
    )
    assert kept["SessionToken"] == kept["data"][0]["user"]["MPIN"] == "[redacted]"
    assert failed.error == "GET https://h/q?x=1&sessionToken=[redacted] got 502"


@pytest.mark.parametrize(
    "fixture", sorted(FIXTURES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_broker_fixture_is_recorded_unchanged(tmp_path: Path, fixture: Path) -> None:
    """No field a parser reads is taken for a credential: each broker body replays as sent."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=[])
    recorder.record("a1", fixture.parent.name, T0, Exchange(200, fixture.read_bytes(), {}), None)
    recorder.close()
    (recorded,) = read_records(path)
    sent = fixture.read_bytes()
    try:
        document = json.loads(sent, parse_float=Decimal)
    except ValueError:  # recorded as the text it is
        assert recorded.body == sent
    else:
        assert json.loads(recorded.body or b"", parse_float=Decimal) == document


def test_the_file_is_rotated_at_its_cap(tmp_path: Path) -> None:
    """Lines go to FILE until the next would pass the cap; then FILE becomes FILE.1 (the older
    FILE.1 is dropped) and a new FILE starts. Both replay, neither passes the cap."""
    path = tmp_path / "polls.jsonl"
    recorder = Recorder(path, secrets=[], max_bytes=1000)
    for n in range(40):
        reason = f"poll {n:02}: timed out"
        assert recorder.record("k1", "kotak_neo", T0, None, BrokerUnavailable("kotak_neo", reason))
    recorder.close()
    rotated = path.with_name("polls.jsonl.1")
    assert path.stat().st_size <= 1000 and rotated.stat().st_size <= 1000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    errors = [r.error for r in (*read_records(rotated), *read_records(path))]
    assert errors[-1] == "poll 39: timed out"
    assert errors == [f"poll {n:02}: timed out" for n in range(40 - len(errors), 40)]
    assert 10 < len(errors) < 40


def test_a_full_device_costs_the_lines_not_the_caller(tmp_path: Path) -> None:
    """Every write fails with ENOSPC: record says so (False) each time and logs it once."""
    recorder = Recorder(Path("/dev/full"), secrets=[])
    with capture_logs() as logs:
        results = [
            recorder.record("k1", "kotak_neo", T0, None, BrokerUnavailable("kotak_neo", "x"))
            for _ in range(3)
        ]
    recorder.close()
    assert results == [False, False, False]
    assert [(e["event"], e["error"]) for e in logs] == [
        ("record_failed", "No space left on device")
    ]


def test_snapshot_prints_the_positions_table(
    capsys: pytest.CaptureFixture[str], bundled_rules: Path
) -> None:
    """snapshot on the built-in simulator: a header, one row per position, a total line."""
    assert main(["snapshot", "simulator", "--config", str(bundled_rules)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SYMBOL", "SEGMENT", "PRODUCT", "NET", "QTY", "LTP", "MTM"]
    rows = lines[1:-1]
    assert rows, "the simulator always holds positions after midnight"
    assert lines[-1].startswith(f"{len(rows)} position")
    assert "MTM" in lines[-1]


def test_snapshot_of_an_unknown_account_names_the_configured_ones(
    capsys: pytest.CaptureFixture[str], bundled_rules: Path
) -> None:
    """A typo in the account id: exit 2 and the list of account ids."""
    assert main(["snapshot", "kotak", "--config", str(bundled_rules)]) == 2
    err = capsys.readouterr().err
    assert err == f"{bundled_rules}: no account 'kotak'; configured: simulator\n"
    assert config.load(bundled_rules).accounts == ()
