"""The Telegram sink: alerts as HTML messages per chat, paced to Telegram's limits, and the
bot's commands (/status, /positions, /mute, /unmute, /help) in the configured chats."""
