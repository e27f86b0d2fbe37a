"""Readers: the subscriber rules shared by the CLI and the web service (`subscriptions`) and
the mails owed to them outside the dispatch (`notices`)."""
