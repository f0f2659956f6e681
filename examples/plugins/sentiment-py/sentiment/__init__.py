"""sentiment-py: a sluice plugin scoring the sentiment of text (standard
library only). The logic is in score.py, the plugin in plugin.py."""
