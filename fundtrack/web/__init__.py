"""The web front: pages, upload screen and exports, mounted into the same app."""
