"""TOTP for the Kotak Neo login: RFC 6238 codes, every base32 secret an authenticator accepts,
and a secret that cannot work refused by `check` as by `run`, naming field, variable and line."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from monitor import cli
from monitor.brokers import totp
from tests.brokers.test_kotak_neo_live import make_state
from tests.fakes import serve
from tests.fakes.kotak_neo import make_app
from tests.leaks import assert_no_secret_leaks
from tests.test_snapshot_live import ENV, rules, run_snapshot

# RFC 6238 Appendix B, the SHA1 rows: the 8-digit codes' last six digits are the 6-digit codes.
RFC_KEY = b"12345678901234567890"
RFC_CODES = {
    59: "94287082",
    1111111109: "07081804",
    1111111111: "14050471",
    1234567890: "89005924",
    2000000000: "69279037",
    20000000000: "65353130",
}
SHORT_SECRET = "JBSWY3DPEHPK3PXP"  # 16 characters, 80 bits: what many QR codes hold


@pytest.mark.parametrize(("at", "expected"), RFC_CODES.items())
def test_rfc_6238_sha1_vectors(at: int, expected: str) -> None:
    assert totp.code(RFC_KEY, at) == expected[-totp.DIGITS :]


def test_the_rfc_key_as_base32_gives_the_same_codes() -> None:
    secret = base64.b32encode(RFC_KEY).decode()
    assert totp.decode_secret(secret) == RFC_KEY
    assert totp.code(totp.decode_secret(secret.lower()), 59) == "287082"


def test_a_16_character_secret_is_accepted_as_authenticators_write_it() -> None:
    """80 bits, any case, spaced or hyphenated in groups, padding left off: one key."""
    key = totp.decode_secret(SHORT_SECRET)
    assert len(key) == 10
    for written in (
        "jbswy3dpehpk3pxp",
        "JBSW Y3DP EHPK 3PXP",
        "JBSW-Y3DP-EHPK-3PXP",
        "JBSWY3DPEHPK3PXP",
    ):
        assert totp.decode_secret(written) == key
    assert totp.code(key, 59) == totp.code(key, 30) != totp.code(key, 60)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("", "empty"),
        ("JBSWY3DPEHPK3PX1", "not base32: letters A-Z and digits 2-7 only"),
        ("JBSWY3DPE", "not base32: 9 characters is not a whole secret"),
    ],
)
def test_a_secret_that_does_not_decode_is_refused_without_echoing_it(
    secret: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        totp.decode_secret(secret)


def kotak_rules(path: Path) -> Path:
    path.write_text(
        "accounts:\n"
        "  - id: k1\n"
        "    broker: kotak_neo\n"
        "    credentials:\n"
        '      access_token: "${PM_T_ACCESS}"\n'
        '      mpin: "${PM_T_MPIN}"\n'
        '      totp_secret: "${PM_T_TOTP}"\n'
        '      mobile_number: "${PM_T_MOBILE}"\n'
        '      ucc: "${PM_T_UCC}"\n'
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    return path


def test_check_refuses_a_set_secret_that_does_not_decode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What login would refuse, check refuses: field, variable, reason and line; no value."""
    path = kotak_rules(tmp_path / "rules.yaml")
    monkeypatch.setenv("PM_T_TOTP", "JBSWY3DPEHPK3PX1")
    assert cli.main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: account 'k1': credentials.totp_secret: environment variable PM_T_TOTP:"
        " not base32: letters A-Z and digits 2-7 only (line 7)"
    ]
    assert_no_secret_leaks(["JBSWY3DPEHPK3PX1"], err)


def test_check_accepts_a_16_character_secret_and_an_unset_variable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kotak_rules(tmp_path / "rules.yaml")
    monkeypatch.delenv("PM_T_TOTP", raising=False)
    assert cli.main(["check", str(path)]) == 0
    monkeypatch.setenv("PM_T_TOTP", SHORT_SECRET)
    assert cli.main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    # Unset variables are warnings; the notice of the calendar nearing its last known date
    # depends on today's date. Nothing else is said.
    notices = ("exchange holidays are known only", " is not set (line ")
    assert [line for line in err.splitlines() if not any(n in line for n in notices)] == []
    assert err.count("PM_T_TOTP is not set") == 1, "named while unset, not once set"
    assert out.count(": OK: 1 account") == 2


async def test_snapshot_logs_in_with_a_16_character_secret(tmp_path: Path) -> None:
    """The broker registered an 80-bit secret: login goes through and positions print."""
    state = make_state()
    state.totp_key = totp.decode_secret(SHORT_SECRET)
    env = {**ENV, "PM_KOTAK_TOTP_SECRET": SHORT_SECRET}
    async with serve(make_app(state)) as base:
        code, out, err = await run_snapshot(rules(tmp_path, base), env)
    assert (code, err) == (0, "")
    assert [r.endpoint for r in state.requests][:2] == ["login", "validate"]
    assert len(out.splitlines()) == 2 + len(state.rows)  # header, rows, footer


async def test_snapshot_names_field_and_variable_of_a_secret_that_cannot_work(
    tmp_path: Path,
) -> None:
    async with serve(make_app(make_state())) as base:
        code, out, err = await run_snapshot(
            rules(tmp_path, base), {**ENV, "PM_KOTAK_TOTP_SECRET": "JBSWY3DPE"}
        )
    assert (code, out) == (2, "")
    assert "credentials.totp_secret: environment variable PM_KOTAK_TOTP_SECRET:" in err
    assert "not base32" in err
    assert_no_secret_leaks(["JBSWY3DPE"], err)
