#!/bin/sh
# Playwright's executablePath for a browser inside network namespace $TERTULIA_NETNS:
# `ip netns exec` keeps the pipe file descriptors Playwright drives the browser through.
exec ip netns exec "$TERTULIA_NETNS" "${CHROMIUM:-/usr/bin/chromium}" "$@"
