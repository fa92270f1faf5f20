"""The Telegram sink: alerts as HTML messages per chat, paced to Telegram's limits, and the
bot's commands (/status, /positions, /mute, /unmute, /help) in the configured chats."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.notify.kind import Destination, SinkContext, SinkKind, SinkSet
from monitor.notify.telegram.commands import Commands
from monitor.notify.telegram.config import (
    FIELDS,
    TelegramBotConfig,
    TelegramChat,
    is_optional,
    read_config,
    resolve,
)
from monitor.notify.telegram.sink import TelegramBot, TelegramChatSink
from monitor.notify.telegram.updates import CommandListener


def build(destinations: Sequence[Destination], context: SinkContext) -> SinkSet:
    """A sink per chat; each bot shared by its chats and, with ``commands``, answering them."""
    built = SinkSet()
    bots: dict[TelegramBotConfig, TelegramBot] = {}
    chats: dict[TelegramBotConfig, list[TelegramChatSink]] = {}
    for destination in destinations:
        config = destination.settings(TelegramChat).bot
        bot = bots.get(config)
        if bot is None:
            token = destination.values["bot_token"]
            bot = bots[config] = TelegramBot(
                config.name, token, config.api_url, redact=context.redact
            )
        sink = TelegramChatSink(
            destination.config.name, destination.values["chat_id"], bot, context.zones
        )
        chats.setdefault(config, []).append(sink)
        built.sinks.append(sink)
    commands = Commands(context.view, context.store, context.store)
    built.services += [
        CommandListener(
            bot, chats[config], commands, context.store, context.timezone, clock=context.clock
        )
        for config, bot in bots.items()
        if config.commands
    ]
    built.resources += bots.values()
    return built


TELEGRAM = SinkKind("telegram", FIELDS, read_config, build, resolve, is_optional)
