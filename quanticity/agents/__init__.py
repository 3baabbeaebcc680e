"""Faust agents, grouped by role. Each module's ``install(app, ctx)`` declares its agents."""
