#!/bin/sh
# The demo's batch channel (`[channels.runbook]` and `[channels.sms]` of
# the demo's watchdog.toml): a stand-in for an on-call runbook hook and an
# SMS gateway. The watchdog runs it with the incident in HYPERWATCH_*
# variables (and as JSON on stdin); it appends one line to the file named
# by DEMO_BATCH_LOG, which `hyperwatch demo` shows on its timeline.
#
# $1: the channel's name (runbook, sms).
set -eu
channel="${1:-batch}"
log="${DEMO_BATCH_LOG:?DEMO_BATCH_LOG names the file this script appends to}"
printf '%s %s level %s %s: %s [%s]\n' \
    "$channel" "$HYPERWATCH_INCIDENT_ID" "$HYPERWATCH_LEVEL" "$HYPERWATCH_STATUS" \
    "$HYPERWATCH_SUMMARY" "$HYPERWATCH_IDEMPOTENCY_KEY" >> "$log"
echo "$channel: recorded $HYPERWATCH_IDEMPOTENCY_KEY"
