"""Stage one: signals. Feeds are fetched, parsed, sanitised and stored; editors' annotation
files are validated and imported. Lower layers only: models, settings, store."""
