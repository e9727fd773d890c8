"""The HTTP edge: the FastAPI app, its routers, middleware and the web page."""
