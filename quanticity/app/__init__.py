"""Role apps: context, role registry, app factory, monitors and the process runner."""
