"""How Slack's requests reach the app: over HTTP (`http`) or a Socket Mode websocket (`socket_mode`)."""
