"""arXiv abstracts are written in TeX: turn its common markup into readable text on collection.

``quotes'', `$...$` math, \\emph{}, ~, \\%, -- and \\cite{} noise would otherwise reach readers
as typed. Applied only to arXiv items (a `$` or `~` in a market wire means what it says), to
the text of a sanitised fragment and never inside a tag or a URL. Pure.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable

_SYMBOLS = {
    # Greek
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    # relations and operators
    "times": "×", "cdot": "·", "pm": "±", "mp": "∓", "div": "÷", "leq": "≤", "le": "≤",
    "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "∼", "simeq": "≃",
    "equiv": "≡", "propto": "∝", "ll": "≪", "gg": "≫", "in": "∈", "notin": "∉",
    "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩", "infty": "∞", "partial": "∂",
    "nabla": "∇", "sum": "∑", "prod": "∏", "int": "∫", "forall": "∀", "exists": "∃",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "mapsto": "↦",
    "leftrightarrow": "↔", "uparrow": "↑", "downarrow": "↓", "circ": "∘", "star": "⋆",
    "ell": "ℓ", "dagger": "†", "prime": "′", "ldots": "…", "cdots": "⋯", "dots": "…",
    "log": "log", "ln": "ln", "exp": "exp", "min": "min", "max": "max", "arg": "arg",
    "sin": "sin", "cos": "cos", "lim": "lim", "det": "det", "Pr": "Pr",
    "langle": "⟨", "rangle": "⟩", "lvert": "|", "rvert": "|", "mid": "|",
    "quad": " ", "qquad": " ", "colon": ":", "%": "%", "&": "&", "$": "$", "#": "#", "_": "_",
    "{": "{", "}": "}", ",": " ", ";": " ", ":": " ", "!": "", " ": " ", "\\": " ",
    "left": "", "right": "", "big": "", "Big": "", "bigg": "", "displaystyle": "",
    "LaTeX": "LaTeX", "TeX": "TeX", "textbackslash": "\\",
}  # fmt: skip
_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "E": "𝔼", "P": "ℙ"}
_SUPERSCRIPT = str.maketrans("0123456789+-=()niT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵀ")
_SUBSCRIPT = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")
# \'e \"o \^o \`a \~n \=a \.z \c{c} \v{s} \u{a} \H{o}: letters with a combining accent
_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
    ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306", "H": "\u030b",
}  # fmt: skip
# Commands whose argument is the text itself (fonts, boxes) or a URL
_KEEP_ARGUMENT = (
    "emph|textit|textbf|textsc|textsf|texttt|textrm|textup|textnormal|text|mathrm|mathit|"
    "mathbf|mathsf|mathtt|mathcal|mathscr|mathfrak|boldsymbol|bm|operatorname|underline|"
    "mbox|hbox|url|textsuperscript|textsubscript"
)
# Commands that are noise in an abstract: references, labels, footnotes
_DROP = r"cite[a-zA-Z]*|ref|eqref|autoref|cref|Cref|label|footnote|nocite|vspace|hspace"

_URL = re.compile(r"(?:https?://|www\.)[^\s{}]+")
_URL_COMMAND = re.compile(r"\\url\{([^{}]*)\}")
_MATH = re.compile(
    r"\$\$(?P<display>.+?)\$\$"
    r"|\$(?=\S)(?P<inline>[^$]+?)(?<=\S)\$"
    r"|\\\((?P<paren>.+?)\\\)",
    re.S,
)
_DROPPED = re.compile(rf"\s*~?\\(?:{_DROP})\*?(?:\[[^\]]*\])*\{{[^{{}}]*\}}")
_HREF = re.compile(r"\\href\{([^{}]*)\}\{([^{}]*)\}")
_ARGUMENT = re.compile(rf"\\({_KEEP_ARGUMENT})\s*\{{([^{{}}]*)\}}")
_MATHBB = re.compile(r"\\mathbb\s*\{\s*([A-Za-z])\s*\}|\\mathbb\s+([A-Za-z])")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")
_ACCENT = re.compile(r"\\([\'`^\"~=.])\s*\{?([A-Za-z])\}?|\\([cvuH])\s*\{([A-Za-z])\}")
_COMMAND = re.compile(r"\\([A-Za-z]+|[%&$#_{},;:! \\])")
_SCRIPT = re.compile(r"([\^_])(?:\{([^{}]*)\}|(\\?[A-Za-z0-9]))")
_GROUP = re.compile(r"(?<!\\)\{([^{}$\\]*)\}")
_QUOTES = (
    (re.compile(r"``"), "“"),
    (re.compile(r"''"), "”"),
    (re.compile(r"(?<![`\w])`(?!`)([^`'\n]{1,200})'(?!\w)"), r"‘\1’"),
)
_DASHES = ((re.compile(r"(?<!-)---(?!-)"), "—"), (re.compile(r"(?<![-!<])--(?![->])"), "–"))
_TIE = re.compile(r"(?<=\S)~(?=\S)")
_MARKS = ("\\", "$", "`", "~", "--", "''", "{")
_DOLLAR = "\x00"  # an escaped \$ while math is found
_SPACES = re.compile(r"[ \t]{2,}")


def detex(text: str) -> str:
    """Readable text from an abstract's TeX: quotes, math, emphasis, ties, escapes, dashes.

    URLs pass through untouched; a command we do not know keeps its name, so nothing is lost.
    """
    if not text or not any(mark in text for mark in _MARKS):
        return text
    text = _URL_COMMAND.sub(lambda m: m[1], text)
    text = _HREF.sub(lambda m: f"{m[2]} ({m[1]})", text)
    return _outside_urls(text, _detex)


def detex_html(fragment: str) -> str:
    """`detex` on the text of a sanitised fragment, never inside a tag (an href keeps its ~)."""
    if not fragment:
        return fragment
    pieces = re.split(r"(<[^>]*>)", fragment)
    return "".join(
        p if p.startswith("<") else html.escape(detex(html.unescape(p)), quote=False)
        for p in pieces
    )


def _outside_urls(text: str, change: Callable[[str], str]) -> str:
    out, position = [], 0
    for match in _URL.finditer(text):
        out.append(change(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(change(text[position:]))
    return "".join(out)


def _detex(text: str) -> str:
    text = _MATH.sub(_math, text.replace("\\$", _DOLLAR)).replace(_DOLLAR, "$")
    text = _DROPPED.sub("", text)
    text = _prose(text)
    for pattern, replacement in _QUOTES:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _DASHES:
        text = pattern.sub(replacement, text)
    text = _TIE.sub("\u00a0", text)
    return _SPACES.sub(" ", text)


def _prose(text: str) -> str:
    """Commands outside math: accents, fonts kept as their text, escapes, groups unwrapped."""
    text = _ACCENT.sub(_accent, text)
    for _ in range(3):  # nested \emph{\textbf{...}}
        text = _ARGUMENT.sub(lambda m: m[2], text)
    text = _COMMAND.sub(_command, text)
    return _GROUP.sub(lambda m: m[1], text)


def _math(match: re.Match[str]) -> str:
    body = match["display"] or match["inline"] or match["paren"] or ""
    body = _MATHBB.sub(lambda m: _BLACKBOARD.get(m[1] or m[2], m[1] or m[2]), body)
    for _ in range(3):
        body = _FRAC.sub(lambda m: f"{_wrap(m[1])}/{_wrap(m[2])}", body)
        body = _SQRT.sub(lambda m: f"√{_wrap(m[1])}", body)
        body = _ARGUMENT.sub(lambda m: m[2], body)
    body = _SCRIPT.sub(_script, body)
    body = _COMMAND.sub(_command, body)
    body = _GROUP.sub(lambda m: m[1], body)
    return " ".join(body.split())


def _wrap(part: str) -> str:
    part = part.strip()
    return part if len(part) <= 1 or part.isalnum() else f"({part})"


def _script(match: re.Match[str]) -> str:
    mark, group, single = match[1], match[2], match[3]
    content = group if group is not None else single
    content = _COMMAND.sub(_command, content)
    table = _SUPERSCRIPT if mark == "^" else _SUBSCRIPT
    mapped = content.translate(table)
    if all(ch != orig or not orig.strip() for ch, orig in zip(mapped, content, strict=True)):
        return mapped  # every character has a raised/lowered form: x², x₁
    return f"{mark}{content}" if content.isalnum() else f"{mark}({content})"


def _command(match: re.Match[str]) -> str:
    name = match[1]
    return _SYMBOLS.get(name, name)


def _accent(match: re.Match[str]) -> str:
    mark, letter = (match[1], match[2]) if match[1] else (match[3], match[4])
    return unicodedata.normalize("NFC", letter + _ACCENTS[mark])
