"""Ways to look at a run: narration, the HTML space-time diagram, the web UI."""
