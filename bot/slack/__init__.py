"""The Slack edge: the bolt app, Block Kit answers, Socket Mode and the feedback store."""
