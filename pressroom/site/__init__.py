"""public/ from the releases and the clock: pages, feeds, sitemap, robots.txt; writes only what changed.

The build is a list of jobs (a page, or a folder's three feeds), each with a key of everything that
goes into it (``plan``). A job whose key and files are as the last build left them (var/cache/) is
not even rendered; any other job is rendered (``render``, by forked workers when there are many) and
compared with the file on disk (``sync``): a file whose bytes are unchanged is not touched (its
mtime, hence a static host's ETag and Last-Modified, stay valid), a new or changed file is replaced
atomically (``writer``). Files the build no longer produces are removed: public/ is fully generated.
``listing`` cuts lists into pages and topics, ``sitemap`` writes sitemap.xml.
"""

from pressroom.site.build import BuildReport, build_site

__all__ = ["BuildReport", "build_site"]
