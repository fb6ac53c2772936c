"""Pressroom: press releases from Markdown to an archive site, feeds, email and social networks.

The core is plain Python with no Prefect import; ``flows/`` wraps it for scheduling.
"""

__version__ = "0.1.0"
