"""The telegram entry of rules.yaml: one bot, its token reference, and the chats it serves; and
their values from the environment when the daemon starts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.config import secrets
from monitor.config.problems import NAME, NAME_RULE, Problems, is_http_url, shown_url
from monitor.config.routing import SinkConfig, SinkEntry
from monitor.config.yaml_lines import LineMap
from monitor.model import Severity
from monitor.notify.kind import Destination, Resolution, settings_of

DEFAULT_API_URL = "https://api.telegram.org"
FIELDS = ("kind", "name", "bot_token", "api_url", "commands", "optional", "chats")
_CHAT_FIELDS = ("chat_id", "name", "min_severity", "accounts", "rules")
# A numeric chat id (groups and channels are negative) or a public @channel username.
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")


@dataclass(frozen=True, slots=True)
class TelegramBotConfig:
    """One Telegram bot: its token reference, API address and whether it answers commands."""

    name: str  # the notify entry's name
    token: str  # "${ENV_VAR}"
    api_url: str = DEFAULT_API_URL
    commands: bool = True
    # Optional: with its variables unset the bot is left out at start instead of refusing to
    # run, so the bundled rules.yaml can carry a Telegram entry that needs no credentials.
    optional: bool = False


@dataclass(frozen=True, slots=True)
class TelegramChat:
    """One chat's settings: the bot that serves it and its chat id (or its reference)."""

    bot: TelegramBotConfig
    chat: str  # a chat id, @channel, or "${ENV_VAR}"


def is_chat_id(value: str) -> bool:
    """True for a numeric chat id or an @channel username."""
    return _CHAT_ID.match(value) is not None


def read_config(problems: Problems, sink: SinkEntry) -> list[SinkConfig]:
    """A telegram entry: its bot, then one destination per chat, named ``ENTRY:CHAT``."""
    entry, name, owner = sink.entry, sink.name, sink.owner
    token = entry.get("bot_token")
    secrets.require_reference(
        problems, token, owner, "bot_token", entry.line_of("bot_token"),
        example="${TELEGRAM_BOT_TOKEN}", required=True,
    )  # fmt: skip
    api_url = entry.get("api_url", DEFAULT_API_URL)
    if not is_http_url(api_url):
        reason = f"must be an http(s) URL; got {shown_url(api_url)}"
        problems.problem(owner, "api_url", reason, entry.line_of("api_url"))
    flags = {}
    for flag, default in (("commands", True), ("optional", False)):
        value = entry.get(flag, default)
        if not isinstance(value, bool):
            reason = f"must be true or false; got {value!r}"
            problems.problem(owner, flag, reason, entry.line_of(flag))
        flags[flag] = value is True
    bot = TelegramBotConfig(
        name, str(token), str(api_url).rstrip("/"), flags["commands"], flags["optional"]
    )
    chats = entry.get("chats")
    if not isinstance(chats, list) or not chats:
        reason = "required: a list with at least one chat"
        problems.problem(owner, "chats", reason, entry.line_of("chats"))
        return []
    sinks = []
    for index, chat in enumerate(chats):
        where = f"chats[{index}]"
        if not isinstance(chat, LineMap):
            problems.problem(owner, where, "must be a mapping", entry.line_of("chats"))
            continue
        destination = _chat(problems, sink, bot, chat, where, index)
        if destination is not None:
            sinks.append(destination)
    return sinks


def _chat(
    problems: Problems,
    sink: SinkEntry,
    bot: TelegramBotConfig,
    chat: LineMap,
    where: str,
    index: int,
) -> SinkConfig | None:
    """One chat of the entry as a destination of its own; None when its name is unusable."""
    owner = sink.owner
    for key in chat:
        if key not in _CHAT_FIELDS:
            problems.problem(owner, f"{where}.{key}", "unknown field", chat.line_of(key))
    chat_id = chat.get("chat_id")
    if isinstance(chat_id, int) and not isinstance(chat_id, bool):
        chat_id = str(chat_id)
    if not isinstance(chat_id, str) or not (is_chat_id(chat_id) or secrets.is_reference(chat_id)):
        reason = (
            'required: a chat id (-1001234567890), @channel or "${TELEGRAM_CHAT_ID}";'
            f" got {chat_id!r}"
        )
        problems.problem(owner, f"{where}.chat_id", reason, chat.line_of("chat_id"))
    label = chat.get("name", f"chat{index + 1}")
    line = chat.line_of("name")
    if not isinstance(label, str) or not NAME.match(label):
        problems.problem(owner, f"{where}.name", NAME_RULE, line)
        return None
    destination = f"{sink.name}:{label}"
    if destination in sink.taken:
        reason = f"duplicate of the chat on line {sink.taken[destination]}"
        problems.problem(owner, f"{where}.name", reason, line)
        return None
    sink.taken[destination] = chat.line
    return SinkConfig(
        destination,
        sink.kind,
        problems.severity(chat, owner, Severity.INFO, "min_severity"),
        accounts=problems.globs(chat, "accounts", owner),
        rules=problems.globs(chat, "rules", owner),
        settings=TelegramChat(bot, str(chat_id)),
    )


def is_optional(sink: SinkConfig) -> bool:
    """True for a chat of an ``optional`` bot."""
    return settings_of(sink, TelegramChat).bot.optional


def resolve(path: Path, sinks: Sequence[SinkConfig], environ: Mapping[str, str]) -> Resolution:
    """Each bot's token and chat ids from the environment; an ``optional`` bot whose variables
    are unset is left out with its chats, not an error."""
    resolution = Resolution()
    by_bot: dict[TelegramBotConfig, list[SinkConfig]] = {}
    for sink in sinks:
        by_bot.setdefault(settings_of(sink, TelegramChat).bot, []).append(sink)
    by_token: dict[str, str] = {}
    for bot, destinations in by_bot.items():
        where = f"{path}: notify '{bot.name}'"
        missing: list[str] = []
        token = secrets.from_env(bot.token, environ, missing)
        chats = {
            d.name: secrets.from_env(settings_of(d, TelegramChat).chat, environ, missing)
            for d in destinations
        }
        if missing and bot.optional:
            resolution.skipped.append(bot.name)
            continue
        problems = resolution.problems
        problems += [f"{where}: environment variable {v} is not set" for v in missing]
        if secrets.has_control_character(token):
            problems.append(f"{where}: bot_token: contains a control character (a line break?)")
        for destination, chat in chats.items():
            if chat and not is_chat_id(chat):
                reason = "is not a chat id (-1001234567890) or @channel"
                problems.append(f"{where}: chat '{destination}': {reason}")
        if token and token in by_token:
            # Two loops polling getUpdates for one bot get 409 Conflict for good, and two
            # pacers together would break Telegram's limits: one entry, several chats.
            problems.append(
                f"{where}: bot_token: the same bot as notify '{by_token[token]}';"
                " give one entry several chats instead"
            )
        by_token.setdefault(token, bot.name)
        resolution.secrets.append(token)
        resolution.destinations += [
            Destination(d, {"bot_token": token, "chat_id": chats[d.name]}) for d in destinations
        ]
    return resolution
