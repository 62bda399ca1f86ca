"""Report: paper tables (Markdown, CSV, LaTeX) and figures from stage artifacts."""
