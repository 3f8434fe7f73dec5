"""The project server: web app, login, hub of services, script runner."""
