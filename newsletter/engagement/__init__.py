"""Engagement: which signals readers follow, counted without watching any one reader.

`links` makes the email's counted links (`/r/<key>`, a reader part only in per-reader mode);
`tracking` renders a dispatch with them and keeps them when it is frozen; `redirect` follows
one (the web service's `/r/`), `recorder` batches the hits and classifies them (`agents`: a
browser or a machine; `bursts`: a scanner following every link at once), and folds old rows;
`stats` and `chart` are the editor's report (`newsletter stats`, the preview's panel).
"""
