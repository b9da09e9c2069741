"""The web console: server-rendered pages for projects, datasets, models and API services."""
