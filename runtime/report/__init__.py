"""Reports: report.json/.md, report.html and its sections and plots."""
