"""The bare reference of the fan-out figure: aiohttp making the daemon's requests, nothing else.

Each account logs in once like the Kotak client (TOTP, then MPIN), then every ``--interval``
seconds from a random offset fetches its positions and the prices of its open instruments and
reads both bodies whole. One shared session with the daemon's connector settings. Runs until
it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random

import aiohttp
from yarl import URL

from benchmarks.fanout import ENV
from monitor.brokers import totp
from tests.fakes.kotak_neo import FIN_KEY, LOGIN_PATH, VALIDATE_PATH

TIMEOUTS = aiohttp.ClientTimeout(total=0.8, connect=0.8)  # the daemon's for a 1 s poll


async def login(session: aiohttp.ClientSession, base: str, secrets: dict[str, str]) -> dict:
    """The two login steps; the trade session's token, sid and baseUrl."""
    access = {"Authorization": secrets["access_token"], "neo-fin-key": FIN_KEY}
    body = {
        "mobileNumber": secrets["mobile_number"],
        "ucc": secrets["ucc"],
        "totp": totp.code(totp.decode_secret(secrets["totp_secret"])),
    }
    async with session.post(base + LOGIN_PATH, headers=access, json=body) as response:
        view = (await response.json())["data"]
    headers = {**access, "sid": view["sid"], "Auth": view["token"]}
    async with session.post(
        base + VALIDATE_PATH, headers=headers, json={"mpin": secrets["mpin"]}
    ) as response:
        return dict((await response.json())["data"])


async def account(
    session: aiohttp.ClientSession,
    base: str,
    secrets: dict[str, str],
    instruments: str,
    interval: float,
    rng: random.Random,
) -> None:
    """One account's polls, forever."""
    trade = await login(session, base, secrets)
    user = trade["baseUrl"].rstrip("/")
    positions = f"{user}/quick/user/positions"
    positions_headers = {"Auth": trade["token"], "Sid": trade["sid"], "neo-fin-key": FIN_KEY}
    quotes = URL(f"{user}/script-details/1.0/quotes/neosymbol/{instruments}/ltp", encoded=True)
    quotes_headers = {"Authorization": secrets["access_token"]}
    loop = asyncio.get_running_loop()
    due = loop.time() + rng.uniform(0, interval)
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        due += interval
        try:
            async with session.get(positions, headers=positions_headers, timeout=TIMEOUTS) as r:
                await r.read()
            async with session.get(quotes, headers=quotes_headers, timeout=TIMEOUTS) as r:
                await r.read()
        except (TimeoutError, aiohttp.ClientError):
            continue  # counted by the fake as a missing poll; the daemon would retry too


async def main(base: str, accounts: int, interval: float, instruments: str) -> None:
    """Every account's loop on one session."""
    secrets = {name[len("BENCH_KOTAK_") :].lower(): os.environ[name] for name in ENV}
    rng = random.Random(3)
    connector = aiohttp.TCPConnector(limit=100, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        await asyncio.gather(
            *(account(session, base, secrets, instruments, interval, rng) for _ in range(accounts))
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--instruments", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.base_url, args.accounts, args.interval, args.instruments))
