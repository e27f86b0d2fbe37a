"""The public site: a page per published signal (the brief's seed pages), the signal stream
with its feeds and sitemap, the archive's index, and the static build of all of it.

`pages.Site` renders one page at a time (the web service's /signals/ routes use it);
`build.build_site` writes the whole static folder; `publish.set_published` is the editor's
publish / unpublish.
"""
