"""Build logic of the REP spec site, kept free of MkDocs so another generator can reuse it.

- ``pages``: find ``{{ req("ID") }}`` markers and other macros; enforce that every registry
  id is placed exactly once, in its section's page, and that no page restates a text.
- ``examples``: check the ``json rep`` worked examples against the schemas.
- ``render``: expand macros into Markdown (requirement sentences, registry tables).
- ``schemas``: walk payload schemas into field tables; read vectors; list downloads.
- ``reference``: the generated reference pages.
- ``related``: which requirements a message type's page lists, and that rule in words.
- ``matrix``: the conformance matrix from the submitted reports in ``implementations/``.
- ``spec_changelog``: the normative changelog page.
- ``versions``: which version a build is deployed as, and the development banner.
- ``site``: the facade a generator drives: ``Site.load()``, ``check``, ``render``,
  ``generated_pages``, ``published_files``.
"""

from rep_site.pages import Page, SiteError, check_placement
from rep_site.site import Site

__all__ = ["Page", "Site", "SiteError", "check_placement"]
