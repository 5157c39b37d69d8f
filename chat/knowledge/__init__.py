"""The knowledge base outside the database: file formats, article passages, the bot's entries.

- ``formats``: FAQ entries to and from CSV, JSON and Markdown (``rows`` checks each row,
  ``markdown`` reads and writes the Markdown flavour);
- ``passages``: Markdown articles split into passages for retrieval;
- ``entries``: a site's knowledge as ``bots.KnowledgeEntry`` values, and its cached index.

State changes (importing, reindexing) live in ``chat.services.knowledge``.
"""
