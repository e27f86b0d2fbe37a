"""Stage two: the week's dispatch. Signals are selected and grouped (`select`, `build`),
rendered once to HTML and text (`render`), and published as a web archive (`archive`)."""
