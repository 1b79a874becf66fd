"""MkDocs glue for the REP site. The rules and generators live in ``rep_site``; this module
only hands MkDocs' files and pages to them, so leaving MkDocs means rewriting only this file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page as MkDocsPage
from rep_site import Page, Site, SiteError
from rep_site.reference import MESSAGES_INDEX, PUBLISHED_ROOT

_site: Site | None = None
#: Set by mike for each versioned build (scripts/site.py deploy): "1.0", "dev".
VERSION_VAR = "MIKE_DOCS_VERSION"
#: Set by scripts/site.py: the kit's report.json on the reference server, for the matrix.
REFERENCE_REPORT_VAR = "REP_REFERENCE_REPORT"


def _current() -> Site:
    if _site is None:
        raise PluginError("rep_hooks: on_config did not run")
    return _site


def _expand_nav(items: Any, site: Site) -> Any:
    """Replace the nav entry of the message-type index by the generated per-type pages."""
    if isinstance(items, list):
        return [_expand_nav(item, site) for item in items]
    if isinstance(items, dict):
        expanded = {}
        for title, value in items.items():
            if value == MESSAGES_INDEX:
                expanded[title] = site.message_nav()
            else:
                expanded[title] = _expand_nav(value, site)
        return expanded
    return items


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _site
    report = os.environ.get(REFERENCE_REPORT_VAR)
    try:
        _site = Site.load(
            Path(config.config_file_path).parent,
            version=os.environ.get(VERSION_VAR) or None,
            reference_report=Path(report) if report else None,
        )
    except ValueError as error:
        raise PluginError(str(error)) from None
    if config.nav is not None:
        config.nav = _expand_nav(config.nav, _site)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    site = _current()
    pages = [Page(f.src_uri, f.content_string) for f in files.documentation_pages()]
    try:
        site.check(pages)
    except SiteError as error:
        raise PluginError(str(error)) from None
    try:
        generated = site.generated_pages()
        others = site.other_files()
    except SiteError as error:
        raise PluginError(str(error)) from None
    detail = set(site.generated_detail_pages())
    for src_uri, content in generated.items():
        inclusion = InclusionLevel.NOT_IN_NAV if src_uri in detail else InclusionLevel.UNDEFINED
        files.append(File.generated(config, src_uri, content=content, inclusion=inclusion))
    for relative, path in site.published_files():
        files.append(File.generated(config, f"{PUBLISHED_ROOT}/{relative}", abs_src_path=str(path)))
    for uri, path in others:
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: MkDocsPage, config: MkDocsConfig, files: Files) -> str:
    site = _current()
    try:
        return site.banner(page.url) + site.render(page.file.src_uri, markdown)
    except (KeyError, ValueError, OSError) as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
