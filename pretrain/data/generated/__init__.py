"""Generated corpora: really encoded synthetic videos in the official dataset layouts (tests, bench, quickstart)."""
