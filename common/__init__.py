"""What every part may import: time and process groups, nothing of the project."""
