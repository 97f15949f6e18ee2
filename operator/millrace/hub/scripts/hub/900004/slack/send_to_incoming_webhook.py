"""Send a message to a Slack incoming webhook (or any service that takes Slack's message format)."""

import json
import urllib.error
import urllib.request
from typing import Optional


def main(webhook_url: str, text: str, blocks: Optional[list] = None, thread_ts: str = "",
         username: str = "", icon_emoji: str = "", unfurl_links: bool = False) -> dict:
    """`text` is the message (and the notification's text when `blocks` lay the message out).
    Slack answers `ok`; any other answer (`invalid_payload`, `no_text`, `channel_not_found`)
    fails the step with it. `username` and `icon_emoji` apply to legacy webhooks only."""
    message: dict = {"text": text, "unfurl_links": unfurl_links}
    optional = {"blocks": blocks, "thread_ts": thread_ts, "username": username, "icon_emoji": icon_emoji}
    message.update({key: value for key, value in optional.items() if value})
    request = urllib.request.Request(webhook_url, data=json.dumps(message).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        answer = error.read().decode("utf-8", errors="replace") or f"HTTP {error.code}"
    if answer.strip() != "ok":
        raise RuntimeError(f"the webhook refused the message: {answer[:500]}")
    return {"ok": True, "sent": message}
