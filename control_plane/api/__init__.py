"""HTTP routes, one module per resource; each exposes ``setup_routes(app)``."""
