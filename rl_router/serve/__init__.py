"""``rl-router serve``: an OpenAI-compatible endpoint for trained routers, on Ray Serve (docs/serve.md)."""
