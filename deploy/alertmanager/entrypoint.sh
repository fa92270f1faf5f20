#!/bin/sh
# Runs Alertmanager (deploy/compose.yaml) on alertmanager.yml with the Telegram bot token and
# chat id of deploy/position-monitor.env filled in: Alertmanager reads no environment variables.
# The result goes to a tmpfs, so the token never lands on a volume. Without both variables the
# telegram_configs are dropped and alerts stay in Alertmanager's web UI, which this says.
# Usage: entrypoint.sh ALERTMANAGER [ARGS...]; TEMPLATE and CONFIG override the two paths.
set -eu
template="${TEMPLATE:-/etc/alertmanager/alertmanager.yml}"
config="${CONFIG:-/tmp/alertmanager.yml}"
token="${TELEGRAM_BOT_TOKEN:-}"
chat="${TELEGRAM_CHAT_ID:-}"

case "$token" in
  *[!0-9A-Za-z:_-]*) echo "entrypoint.sh: TELEGRAM_BOT_TOKEN is not a bot token from @BotFather" >&2; exit 1 ;;
esac
case "$chat" in
  *[!0-9-]*) echo "entrypoint.sh: TELEGRAM_CHAT_ID must be a numeric chat id for Alertmanager" >&2; exit 1 ;;
esac

umask 077
if [ -n "$token" ] && [ -n "$chat" ]; then
  sed -e "s|bot_token: \"\${TELEGRAM_BOT_TOKEN}\"|bot_token: \"$token\"|" \
    -e "s|chat_id: \${TELEGRAM_CHAT_ID}|chat_id: $chat|" "$template" >"$config"
else
  echo "entrypoint.sh: TELEGRAM_BOT_TOKEN or TELEGRAM_CHAT_ID unset in position-monitor.env:" \
    "alerts reach no phone, only http://127.0.0.1:9093" >&2
  sed -e '/^ *telegram_configs:/,/^ *parse_mode:/d' "$template" >"$config"
fi
exec "$@" --config.file="$config"
