"""MkDocs hooks (mkdocs.yml `hooks:`): the configuration reference is generated from the config
models when the guide is built (loadgen/config/reference.py), in place of its marker in
docs/configuration.md. A configuration page without the marker fails the build."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # web3's own imports warn about websockets; not the guide's business
    warnings.simplefilter("ignore", DeprecationWarning)
    import loadgen.config.schema  # noqa: F401  (imported here, under the filter: it imports web3)
    from loadgen.config.reference import MARKER, markdown

PAGE = "configuration.md"


def on_page_markdown(text: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return text
    if MARKER not in text:
        raise SystemExit(f"docs/{PAGE} lost its marker {MARKER}: the configuration reference has nowhere to go")
    return text.replace(MARKER, markdown())
